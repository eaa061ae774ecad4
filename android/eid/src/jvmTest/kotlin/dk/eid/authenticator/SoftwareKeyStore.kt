package dk.eid.authenticator

import java.security.KeyPair
import java.security.KeyPairGenerator
import java.security.SecureRandom
import java.security.Signature
import java.security.interfaces.ECPublicKey
import java.security.spec.ECGenParameterSpec
import java.util.concurrent.ConcurrentHashMap
import javax.crypto.Mac
import javax.crypto.spec.SecretKeySpec
import dk.eid.authenticator.ffi.KeyProtection
import dk.eid.authenticator.ffi.KeyStore
import dk.eid.authenticator.ffi.KeyStoreException

/**
 * A software [KeyStore] for tests: P-256 keys from the JDK, kept in memory.
 * Behaves like the Android one at the boundary (SEC1 public keys, DER
 * signatures, 32-byte HMAC outputs, [KeyStoreException.NotFound]), but says
 * it is [KeyProtection.SOFTWARE]: a release build of the library opens with it
 * only when the configuration opts in ([SOFTWARE_KEYSTORE_OPT_IN]).
 */
class SoftwareKeyStore : KeyStore {
    private val keys = ConcurrentHashMap<String, KeyPair>()
    private val secrets = ConcurrentHashMap<String, ByteArray>()
    private val random = SecureRandom()

    /** When set, every call throws it (to test failures crossing the FFI). */
    @Volatile
    var failWith: Throwable? = null

    /** Calls per method name, to check the core really uses this keystore. */
    val calls = ConcurrentHashMap<String, Int>()

    override fun createKey(alias: String): ByteArray = call("createKey") {
        val pair = KeyPairGenerator.getInstance("EC").apply {
            initialize(ECGenParameterSpec("secp256r1"), random)
        }.generateKeyPair()
        keys[alias] = pair
        EcKeys.sec1Uncompressed(pair.public as ECPublicKey)
    }

    override fun sign(alias: String, message: ByteArray): ByteArray = call("sign") {
        val pair = keys[alias] ?: throw KeyStoreException.NotFound()
        Signature.getInstance("SHA256withECDSA").run {
            initSign(pair.private)
            update(message)
            sign()
        }
    }

    override fun publicKey(alias: String): ByteArray = call("publicKey") {
        EcKeys.sec1Uncompressed((keys[alias] ?: throw KeyStoreException.NotFound()).public as ECPublicKey)
    }

    override fun deleteKey(alias: String) = call("deleteKey") {
        keys.remove(alias)
        secrets.remove(alias)
        Unit
    }

    override fun hardwareSecret(alias: String, input: ByteArray): ByteArray = call("hardwareSecret") {
        val secret = secrets.computeIfAbsent(alias) { ByteArray(32).also(random::nextBytes) }
        Mac.getInstance("HmacSHA256").run {
            init(SecretKeySpec(secret, "HmacSHA256"))
            doFinal(input)
        }
    }

    override fun protection(): KeyProtection = KeyProtection.SOFTWARE

    private inline fun <T> call(name: String, block: () -> T): T {
        calls.merge(name, 1, Int::plus)
        failWith?.let { throw it }
        return block()
    }
}

/**
 * The opt-in a release build of the library needs to open with [SoftwareKeyStore]
 * (`AppConfig.allowSoftwareKeystore`, docs/integration.md section 2).
 */
const val SOFTWARE_KEYSTORE_OPT_IN = "tests only: device key in plain files"

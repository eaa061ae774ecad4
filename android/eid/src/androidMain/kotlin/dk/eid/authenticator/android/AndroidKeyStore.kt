package dk.eid.authenticator.android

import android.os.Build
import android.security.keystore.KeyGenParameterSpec
import android.security.keystore.KeyProperties
import android.security.keystore.StrongBoxUnavailableException
import dk.eid.authenticator.EcKeys
import java.security.KeyPairGenerator
import java.security.PrivateKey
import java.security.Signature
import java.security.interfaces.ECPublicKey
import java.security.spec.ECGenParameterSpec
import javax.crypto.KeyGenerator
import javax.crypto.Mac
import javax.crypto.SecretKey
import dk.eid.authenticator.ffi.KeyProtection
import dk.eid.authenticator.ffi.KeyStore
import dk.eid.authenticator.ffi.KeyStoreException

/**
 * The core's [KeyStore] on the Android Keystore: P-256 signing keys and the
 * HMAC "hardware secret" are generated inside the keystore (StrongBox when the
 * device has one, the TEE otherwise) and never leave it. Only public keys,
 * signatures and HMAC outputs cross into the core.
 *
 * Thread-safe: the Android Keystore serialises access itself, and this class
 * keeps no mutable state.
 *
 * @param preferStrongBox try StrongBox first (API 28+); falls back to the TEE
 *   when the device has no StrongBox.
 */
class AndroidKeyStore(private val preferStrongBox: Boolean = true) : KeyStore {

    private val keyStore: java.security.KeyStore =
        java.security.KeyStore.getInstance(PROVIDER).apply { load(null) }

    override fun createKey(alias: String): ByteArray = keystoreCall {
        if (keyStore.containsAlias(alias)) keyStore.deleteEntry(alias)
        val key = generate(alias) { strongBox ->
            val spec = KeyGenParameterSpec.Builder(alias, KeyProperties.PURPOSE_SIGN)
                .setAlgorithmParameterSpec(ECGenParameterSpec("secp256r1"))
                .setDigests(KeyProperties.DIGEST_SHA256)
                .apply { if (strongBox) setIsStrongBoxBacked(true) }
                .build()
            KeyPairGenerator.getInstance(KeyProperties.KEY_ALGORITHM_EC, PROVIDER)
                .apply { initialize(spec) }
                .generateKeyPair()
                .public
        }
        EcKeys.sec1Uncompressed(key as ECPublicKey)
    }

    override fun sign(alias: String, message: ByteArray): ByteArray = keystoreCall {
        val key = keyStore.getKey(alias, null) as? PrivateKey ?: throw KeyStoreException.NotFound()
        // The keystore hashes with SHA-256; the output is DER, as the core expects.
        Signature.getInstance("SHA256withECDSA").run {
            initSign(key)
            update(message)
            sign()
        }
    }

    override fun publicKey(alias: String): ByteArray = keystoreCall {
        val cert = keyStore.getCertificate(alias) ?: throw KeyStoreException.NotFound()
        EcKeys.sec1Uncompressed(cert.publicKey as ECPublicKey)
    }

    override fun deleteKey(alias: String) = keystoreCall {
        if (keyStore.containsAlias(alias)) keyStore.deleteEntry(alias)
    }

    override fun hardwareSecret(alias: String, input: ByteArray): ByteArray = keystoreCall {
        val secret = synchronized(this) {
            keyStore.getKey(alias, null) as? SecretKey ?: generate(alias) { strongBox ->
                val spec = KeyGenParameterSpec.Builder(alias, KeyProperties.PURPOSE_SIGN)
                    .setDigests(KeyProperties.DIGEST_SHA256)
                    .apply { if (strongBox) setIsStrongBoxBacked(true) }
                    .build()
                KeyGenerator.getInstance(KeyProperties.KEY_ALGORITHM_HMAC_SHA256, PROVIDER)
                    .apply { init(spec) }
                    .generateKey()
            }
        }
        Mac.getInstance("HmacSHA256").run {
            init(secret)
            doFinal(input)
        }
    }

    /**
     * [KeyProtection.HARDWARE]: the keys are non-exportable in the TEE at
     * least. StrongBox is preferred but a device without it falls back to the
     * TEE, so this claims only what holds on every device.
     */
    override fun protection(): KeyProtection = KeyProtection.HARDWARE

    /** Runs [make] on StrongBox when preferred and available, else on the TEE. */
    private fun <T> generate(alias: String, make: (strongBox: Boolean) -> T): T {
        if (preferStrongBox && Build.VERSION.SDK_INT >= Build.VERSION_CODES.P) {
            try {
                return make(true)
            } catch (e: StrongBoxUnavailableException) {
                if (keyStore.containsAlias(alias)) keyStore.deleteEntry(alias)
            }
        }
        return make(false)
    }

    /** Maps platform failures to [KeyStoreException.Failure] (no secrets in the text). */
    private inline fun <T> keystoreCall(block: () -> T): T = try {
        block()
    } catch (e: KeyStoreException) {
        throw e
    } catch (e: Exception) {
        throw KeyStoreException.Failure("${e.javaClass.simpleName}: ${e.message}")
    }

    companion object {
        private const val PROVIDER = "AndroidKeyStore"
    }
}

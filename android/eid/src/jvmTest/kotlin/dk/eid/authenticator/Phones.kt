package dk.eid.authenticator

import java.io.File
import java.nio.file.Files
import java.util.UUID
import dk.eid.authenticator.ffi.AppConfig
import dk.eid.authenticator.ffi.Language

/** The PIN every test authenticator is activated with (passes the PIN policy). */
const val PIN = "482916"

/** A wrong PIN that also passes the policy's format checks. */
const val WRONG_PIN = "582916"

/**
 * One simulated phone: its own database folder and software keystore,
 * for a fresh identity on [server].
 */
class Phone(
    private val server: TestServer,
    /** Minimum read time: 0 in tests (they approve right after a refresh); null = the core's default. */
    minReadMs: ULong? = 0uL,
) : AutoCloseable {
    val dir: File = Files.createTempDirectory("eid-kotlin-phone").toFile()
    val keyStore = SoftwareKeyStore()

    /** A user ID that passes the server's rules (letters, digits and a special). */
    val userId = "kt-${UUID.randomUUID().toString().take(8)}7a"
    val identityId: String = server.cli.createIdentity(userId)

    val config = AppConfig(
        databasePath = File(dir, "eid.sqlite").path,
        serverUrl = server.url,
        serverSpkiPin = server.spkiPin,
        language = Language.ENGLISH,
        kdfIterations = 1000u, // tests only: apps leave it null (calibrated)
        minReadMs = minReadMs, // tests only: apps leave it null (1500 ms)
        allowSoftwareKeystore = SOFTWARE_KEYSTORE_OPT_IN, // tests only
    )

    suspend fun open(): EidApp = EidApp.open(config, keyStore)

    /** Opens the phone and activates its authenticator with [PIN]. */
    suspend fun activated(): EidApp {
        val eid = open()
        eid.activate(userId, server.cli.activationCode(identityId), PIN)
        return eid
    }

    override fun close() {
        dir.deleteRecursively()
    }
}

/** A code of the right shape that differs from [code] in its last character. */
fun wrongActivationCode(code: String): String {
    val last = code.last()
    return code.dropLast(1) + if (last == '7') '8' else '7'
}

package dk.eid.authenticator

import java.io.File
import java.nio.file.Files
import java.security.SecureRandom
import java.util.concurrent.LinkedBlockingQueue
import java.util.concurrent.TimeUnit

/** The workspace root and the cargo output folder, passed in by the Maven build. */
object Repo {
    val root: File = File(
        System.getProperty("eid.repo.root")
            ?: error("system property eid.repo.root is not set: run scripts/test-kotlin.sh"),
    ).canonicalFile
    val nativeDir: File = File(System.getProperty("eid.native.dir") ?: "$root/target/debug").canonicalFile

    fun binary(name: String): File = File(nativeDir, name).also {
        check(it.canExecute()) { "$it is missing: cargo build -p eid-server -p eid-cli" }
    }
}

/**
 * A real `eid-server` on 127.0.0.1 (a free port chosen by the OS) with a
 * temporary data folder, for one test class. [close] stops it; a shutdown hook
 * does too if the JVM ends first.
 */
class TestServer private constructor(
    private val process: Process,
    private val dataDir: File,
    /** `https://127.0.0.1:<port>`. */
    val url: String,
    /** `sha256/<base64>`: the server's TLS key pin. */
    val spkiPin: String,
    /** The admin API token. */
    val adminToken: String,
    private val hook: Thread,
) : AutoCloseable {

    /** The `eid` CLI against this server, one JSON object out per call. */
    val cli = Cli(this)

    override fun close() {
        stop(process)
        runCatching { Runtime.getRuntime().removeShutdownHook(hook) }
        dataDir.deleteRecursively()
    }

    companion object {
        /**
         * Starts a server whose service-provider requests live [requestLifetimeSecs]
         * seconds, and waits until it prints its URL and TLS pin.
         */
        fun start(
            requestLifetimeSecs: Int = 300,
            newDeviceWaitSecs: Int = 3600,
            selfServiceGapSecs: Int = 3600,
        ): TestServer {
            val dataDir = Files.createTempDirectory("eid-kotlin-server").toFile()
            val token = ByteArray(24).also(SecureRandom()::nextBytes).joinToString("") { "%02x".format(it) }
            val log = File(dataDir, "server.log")
            val pb = ProcessBuilder(Repo.binary("eid-server").path)
                .redirectError(ProcessBuilder.Redirect.appendTo(log))
            pb.environment().apply {
                put("EID_SERVER_DATA_DIR", File(dataDir, "data").path)
                put("EID_SERVER_LISTEN", "127.0.0.1:0")
                put("EID_SERVER_ADMIN_TOKEN", token)
                put("EID_SERVER_REQUEST_LIFETIME_SECS", requestLifetimeSecs.toString())
                put("EID_SERVER_NEW_DEVICE_WAIT_SECS", newDeviceWaitSecs.toString())
                put("EID_SERVER_SELF_SERVICE_GAP_SECS", selfServiceGapSecs.toString())
                put("EID_LOG", "warn")
            }
            val process = pb.start()
            val hook = Thread { stop(process) }
            Runtime.getRuntime().addShutdownHook(hook)

            // Read stdout on a daemon thread: it also keeps the pipe drained.
            val lines = LinkedBlockingQueue<String>()
            Thread {
                process.inputStream.bufferedReader().useLines { seq -> seq.forEach(lines::put) }
            }.apply { isDaemon = true; name = "eid-server-stdout" }.start()

            var url: String? = null
            var pin: String? = null
            val deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30)
            try {
                while (url == null || pin == null) {
                    val left = deadline - System.nanoTime()
                    val line = lines.poll(maxOf(left, 0), TimeUnit.NANOSECONDS)
                    if (line == null) {
                        error(
                            "eid-server did not start within 30 s (alive=${process.isAlive}); log:\n" +
                                log.takeIf { it.exists() }?.readText().orEmpty(),
                        )
                    }
                    Regex("listening on (https://\\S+)").find(line)?.let { url = it.groupValues[1] }
                    Regex("TLS SPKI pin:\\s+(sha256/\\S+)").find(line)?.let { pin = it.groupValues[1] }
                }
            } catch (e: Throwable) {
                stop(process)
                runCatching { Runtime.getRuntime().removeShutdownHook(hook) }
                throw e
            }
            return TestServer(process, dataDir, checkNotNull(url), checkNotNull(pin), token, hook)
        }

        private fun stop(process: Process) {
            if (!process.isAlive) return
            process.destroy() // SIGTERM
            if (!process.waitFor(5, TimeUnit.SECONDS)) {
                process.destroyForcibly()
                process.waitFor(5, TimeUnit.SECONDS)
            }
        }
    }
}

/**
 * The `eid` CLI as a subprocess (`--json`), for the support (admin) and
 * service-provider steps of the tests.
 */
class Cli(private val server: TestServer) {

    /** A non-zero exit of the CLI, with its JSON error. */
    class Failure(val json: String) : RuntimeException("eid CLI failed: $json")

    /** Runs `eid --json <args>` and returns its JSON output. */
    fun run(vararg args: String, apiKey: String? = null): String {
        val pb = ProcessBuilder(listOf(Repo.binary("eid").path, "--json") + args)
        pb.environment().apply {
            put("EID_SERVER", server.url)
            put("EID_SPKI_PIN", server.spkiPin)
            put("EID_ADMIN_TOKEN", server.adminToken)
            if (apiKey != null) put("EID_API_KEY", apiKey)
        }
        val p = pb.redirectErrorStream(false).start()
        val err = Thread { p.errorStream.readBytes() }.apply { start() }
        val out = p.inputStream.bufferedReader().readText().trim()
        if (!p.waitFor(60, TimeUnit.SECONDS)) {
            p.destroyForcibly()
            error("eid ${args.joinToString(" ")} timed out")
        }
        err.join()
        if (p.exitValue() != 0) throw Failure(out)
        return out
    }

    /** Creates an identity; returns its id. */
    fun createIdentity(userId: String): String =
        run("admin", "create-identity", "--user-id", userId).jsonString("identity_id")

    /** Issues an activation code for [identityId]. */
    fun activationCode(identityId: String): String =
        run("admin", "activation-code", "--identity", identityId).jsonString("activation_code")

    /** Registers a service provider; returns its API key. */
    fun registerProvider(name: String): String =
        run("admin", "register-provider", "--name", name).jsonString("api_key")

    /** A login request for [userId]; returns the request id. */
    fun createRequest(apiKey: String, userId: String, text: String): String =
        run("rp", "request", "--user-id", userId, "--text", text, apiKey = apiKey).jsonString("request_id")

    /** Support blocks or unblocks an identity. */
    fun setBlocked(identityId: String, blocked: Boolean) {
        run("admin", if (blocked) "block" else "unblock", "--identity", identityId, "--reason", "test: support case")
    }

    /** The request's status (`pending`, `approved`, `expired`, ...), receipt verified by the CLI. */
    fun status(apiKey: String, requestId: String): String =
        run("rp", "status", "--request", requestId, apiKey = apiKey).jsonString("status")
}

/** The first string value of "key" in a flat JSON object (enough for the CLI's output). */
fun String.jsonString(key: String): String =
    Regex("\"${Regex.escape(key)}\"\\s*:\\s*\"([^\"]*)\"").find(this)?.groupValues?.get(1)
        ?: error("no \"$key\" in $this")

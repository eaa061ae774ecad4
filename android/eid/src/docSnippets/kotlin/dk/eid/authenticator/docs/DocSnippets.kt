// The Kotlin snippets of docs/integration.md and android/README.md, as code
// the build compiles: android/framework/pom.xml compiles this file against the
// Android framework (Robolectric's android-all) with the shell and the
// generated bindings, and DocSnippetsTest (JVM suite) checks that every
// ```kotlin block in those documents equals the region of the same name here.
// Edit a snippet here first, then paste it into the document (the test says
// which one differs). Nothing here runs: the functions only have to compile.
package dk.eid.authenticator.docs

import android.content.Context
import dk.eid.authenticator.EidApp
import dk.eid.authenticator.ForegroundPuller
import dk.eid.authenticator.android.AndroidKeyStore
import dk.eid.authenticator.android.ProcessLifecycleForegroundHook
import dk.eid.authenticator.ffi.AppConfig
import dk.eid.authenticator.ffi.EidException
import dk.eid.authenticator.ffi.Language
import dk.eid.authenticator.ffi.RequestView
import dk.eid.authenticator.retryAfter
import java.io.File
import kotlin.time.Duration
import kotlin.time.Duration.Companion.seconds
import kotlinx.coroutines.CoroutineScope

// What the snippets call but the documents leave to the app.
private fun log(e: Throwable) = println(e)
private fun show(requests: List<RequestView>) = println(requests.size)
private fun showTimeLeft(left: Duration) = println(left)
private fun showAttemptsLeft(attemptsLeft: UInt, retryAfter: Duration?) = println("$attemptsLeft $retryAfter")
private fun showWait(retryAfter: Duration?) = println(retryAfter)

internal suspend fun openSnippet(context: Context): EidApp {
    // snippet:start open
    val eid = EidApp.open(
        AppConfig(
            databasePath = File(context.noBackupFilesDir, "eid.sqlite").path,
            serverUrl = "https://eid.example:8443",
            serverSpkiPin = "sha256/…",      // the broker's TLS key pin, shipped with the app
            language = Language.DANISH,
            kdfIterations = null,            // null: calibrated on the device (never set it in apps)
        ),
        AndroidKeyStore(),
    )
    // snippet:end
    return eid
}

internal fun softwareKeystoreOptInSnippet(config: AppConfig): AppConfig {
    // snippet:start software-keystore-opt-in
    val testConfig = config.copy(allowSoftwareKeystore = "tests only: device key in plain files")
    // snippet:end
    return testConfig
}

internal fun foregroundSnippet(appScope: CoroutineScope, eid: EidApp): ForegroundPuller {
    // snippet:start foreground
    val puller = ForegroundPuller(appScope, eid, interval = 15.seconds) { e -> log(e) }
    ProcessLifecycleForegroundHook(puller).install()     // ON_START → pull, ON_STOP → stop
    // snippet:end
    return puller
}

internal suspend fun readmeSnippet(context: Context, appScope: CoroutineScope, request: RequestView, pin: String) {
    // snippet:start android-readme
    val eid = EidApp.open(
        AppConfig(
            databasePath = File(context.noBackupFilesDir, "eid.sqlite").path,
            serverUrl = "https://eid.example:8443",
            serverSpkiPin = "sha256/…",
            language = Language.DANISH,
            kdfIterations = null, // calibrated on the device
        ),
        AndroidKeyStore(),
    )

    // Pull on app open (and every 15 s while the app is on screen).
    val puller = ForegroundPuller(appScope, eid, interval = 15.seconds) { e -> log(e) }
    ProcessLifecycleForegroundHook(puller).install()

    // UI: collect the list; tick the countdown of the request on screen.
    eid.requests.collect { show(it) }
    eid.countdown(request).collect { left -> showTimeLeft(left) }

    // Approve: PIN first, then the swipe.
    try {
        val token = eid.unlock(request, pin)
        val receipt = token.use { eid.approve(it, swipeConfirmed = true) }
    } catch (e: EidException.WrongPin) {
        showAttemptsLeft(e.attemptsLeft, e.retryAfter)
    } catch (e: EidException.LockedOut) {
        showWait(e.retryAfter)
    }
    // snippet:end
}

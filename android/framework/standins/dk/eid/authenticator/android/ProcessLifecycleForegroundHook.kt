package dk.eid.authenticator.android

import dk.eid.authenticator.ForegroundPuller

/**
 * Compile-time stand-in for the real hook (eid/src/androidxMain), which needs
 * androidx.lifecycle from Google's Maven repository, unreachable from the
 * build machines. Same public signature, so the documentation snippets that
 * call it type-check; it is never packaged or run. Keep it in step with the
 * real class.
 */
class ProcessLifecycleForegroundHook(private val puller: ForegroundPuller) {
    /** See the real class. */
    fun install(): Unit = throw UnsupportedOperationException("compile-time stand-in")

    /** See the real class. */
    fun uninstall(): Unit = throw UnsupportedOperationException("compile-time stand-in")
}

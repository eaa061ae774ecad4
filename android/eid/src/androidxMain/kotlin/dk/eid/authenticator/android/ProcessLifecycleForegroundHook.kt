package dk.eid.authenticator.android

import androidx.lifecycle.DefaultLifecycleObserver
import androidx.lifecycle.LifecycleOwner
import androidx.lifecycle.ProcessLifecycleOwner
import dk.eid.authenticator.ForegroundPuller

/**
 * Connects a [ForegroundPuller] to the whole app's lifecycle: `ON_START` (the
 * first activity became visible, i.e. the app was opened or came back) pulls,
 * `ON_STOP` (the last activity left the screen) stops periodic pulling.
 *
 * ```
 * val puller = ForegroundPuller(appScope, eid, interval = 15.seconds)
 * ProcessLifecycleForegroundHook(puller).install()
 * ```
 */
class ProcessLifecycleForegroundHook(private val puller: ForegroundPuller) : DefaultLifecycleObserver {

    /** Registers on [ProcessLifecycleOwner]; call once, on the main thread. */
    fun install() {
        ProcessLifecycleOwner.get().lifecycle.addObserver(this)
    }

    /** Unregisters; call on the main thread. */
    fun uninstall() {
        ProcessLifecycleOwner.get().lifecycle.removeObserver(this)
        puller.onBackground()
    }

    override fun onStart(owner: LifecycleOwner) = puller.onForeground()

    override fun onStop(owner: LifecycleOwner) = puller.onBackground()
}

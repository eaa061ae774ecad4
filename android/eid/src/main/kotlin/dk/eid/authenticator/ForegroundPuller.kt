package dk.eid.authenticator

import kotlin.time.Duration
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Job
import kotlinx.coroutines.delay
import kotlinx.coroutines.launch

/**
 * "Pull on app open": pulls the pending requests when the app comes to the
 * foreground, and optionally keeps pulling every [interval] while it stays
 * there. Nothing runs in the background and there is no push.
 *
 * Platform-neutral: the Android hook (`ProcessLifecycleForegroundHook`) calls
 * [onForeground] on `ON_START` and [onBackground] on `ON_STOP`; tests and other
 * hosts call them directly.
 *
 * @param scope where pulls run; cancelling it stops everything.
 * @param interval if set, pull again this often while in the foreground.
 * @param onError told about failed pulls (for example
 *   [dk.eid.authenticator.ffi.EidException.Network] when offline); pulling goes on.
 * @param pull the pull itself, usually [EidApp.refresh].
 */
class ForegroundPuller(
    private val scope: CoroutineScope,
    private val interval: Duration? = null,
    private val onError: (Throwable) -> Unit = {},
    private val pull: suspend () -> Unit,
) {
    init {
        require(interval == null || interval.isPositive()) { "interval must be positive" }
    }

    /** Pulls through [authenticator]'s [EidApp.refresh]; its [EidApp.requests] updates. */
    constructor(
        scope: CoroutineScope,
        authenticator: EidApp,
        interval: Duration? = null,
        onError: (Throwable) -> Unit = {},
    ) : this(scope, interval, onError, { authenticator.refresh() })

    private val lock = Any()
    private var job: Job? = null

    /** True between [onForeground] and [onBackground]. */
    @Volatile
    var isForeground: Boolean = false
        private set

    /**
     * The app came to the foreground: pull now (unless a pull started by an
     * earlier call is still running) and, with an [interval], keep pulling.
     */
    fun onForeground() {
        synchronized(lock) {
            isForeground = true
            if (job?.isActive == true) return
            job = scope.launch {
                while (true) {
                    pullOnce()
                    delay(interval ?: break)
                }
            }
        }
    }

    /** The app left the foreground: stop periodic pulling (a pull in flight is cancelled). */
    fun onBackground() {
        synchronized(lock) {
            isForeground = false
            job?.cancel()
            job = null
        }
    }

    private suspend fun pullOnce() {
        try {
            pull()
        } catch (e: CancellationException) {
            throw e
        } catch (e: Exception) {
            onError(e)
        }
    }
}

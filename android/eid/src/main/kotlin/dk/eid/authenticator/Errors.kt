package dk.eid.authenticator

import kotlin.time.Duration
import kotlin.time.Duration.Companion.milliseconds
import dk.eid.authenticator.ffi.EidException

/**
 * How long the person must wait before the next PIN try: set for
 * [EidException.WrongPin] (when a wait applies) and [EidException.LockedOut];
 * `null` for every other error or when no wait applies.
 */
val EidException.retryAfter: Duration?
    get() = when (this) {
        is EidException.WrongPin -> retryAfterMs.toLong().takeIf { it > 0 }?.milliseconds
        is EidException.LockedOut -> retryAfterMs.toLong().milliseconds
        else -> null
    }

/** True when nothing was lost and the same call may simply be tried again later. */
val EidException.isNetworkFailure: Boolean
    get() = this is EidException.Network

/**
 * True when the app should send the person back to activation (the PIN key
 * was destroyed, or the server no longer accepts this phone).
 */
val EidException.needsReactivation: Boolean
    get() = this is EidException.NotActivated

/**
 * True when the request on screen can no longer be decided and the list should
 * be refreshed: it expired, was decided elsewhere or is gone.
 */
val EidException.requestIsGone: Boolean
    get() = this is EidException.Expired || this is EidException.AlreadyDecided ||
        this is EidException.UnknownRequest

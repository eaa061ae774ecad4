package dk.eid.authenticator

import dk.eid.authenticator.ffi.CallSignals
import dk.eid.authenticator.ffi.ContextProvider
import dk.eid.authenticator.ffi.Signal

/**
 * How the Android platform's readings become the core's call-context
 * signals (docs/integration.md, "Calls and screen sharing"). Platform-neutral,
 * so the JVM tests check every reading; [dk.eid.authenticator.android.PlatformContext]
 * feeds it from `AudioManager` and `AccessibilityManager`.
 *
 * A reading the platform could not give (no service, an exception, an older
 * Android) is `null` and becomes [Signal.UNKNOWN], never [Signal.OFF]: "could
 * not see a call" is not "no call".
 */
object CallSignalRules {
    /** `AudioManager.MODE_NORMAL`: no call, no communication. */
    const val MODE_NORMAL = 0

    /** `AudioManager.MODE_RINGTONE`: ringing, not yet in a call. */
    const val MODE_RINGTONE = 1

    /** `AudioManager.MODE_IN_CALL`: a telephony call. */
    const val MODE_IN_CALL = 2

    /** `AudioManager.MODE_IN_COMMUNICATION`: a VoIP call (WhatsApp, Teams, ...). */
    const val MODE_IN_COMMUNICATION = 3

    /** `AudioManager.MODE_CALL_SCREENING` (API 30): a call being screened. */
    const val MODE_CALL_SCREENING = 4

    /** `AudioManager.MODE_CALL_REDIRECT` (API 33): a call redirected to another device. */
    const val MODE_CALL_REDIRECT = 5

    /** `AudioManager.MODE_COMMUNICATION_REDIRECT` (API 33): VoIP redirected. */
    const val MODE_COMMUNICATION_REDIRECT = 6

    /**
     * A call from `AudioManager.getMode()` (needs no permission): any in-call
     * or in-communication mode is on, normal and ringing are off, anything
     * else (an invalid mode, a newer one, no reading) is unknown.
     */
    fun call(audioMode: Int?): Signal = when (audioMode) {
        MODE_IN_CALL, MODE_IN_COMMUNICATION, MODE_CALL_SCREENING,
        MODE_CALL_REDIRECT, MODE_COMMUNICATION_REDIRECT -> Signal.ON
        MODE_NORMAL, MODE_RINGTONE -> Signal.OFF
        else -> Signal.UNKNOWN
    }

    /**
     * Remote control from the enabled accessibility services, each given as
     * whether it belongs to a system app: any service that is not from the
     * system is on (remote-control and fake "support" apps use them), only
     * system ones (or none) is off, no reading is unknown.
     */
    fun remoteControl(enabledServicesAreSystem: List<Boolean>?): Signal = when {
        enabledServicesAreSystem == null -> Signal.UNKNOWN
        enabledServicesAreSystem.any { isSystem -> !isSystem } -> Signal.ON
        else -> Signal.OFF
    }

    /**
     * Screen sharing or recording as the platform reported it last (Android 15's
     * screen-recording callback), or unknown where the platform has no way to
     * tell.
     */
    fun screenShared(recording: Boolean?): Signal = when (recording) {
        true -> Signal.ON
        false -> Signal.OFF
        null -> Signal.UNKNOWN
    }

    /** All three signals from the readings. */
    fun signals(audioMode: Int?, enabledServicesAreSystem: List<Boolean>?, recording: Boolean?): CallSignals =
        CallSignals(
            call = call(audioMode),
            screenShared = screenShared(recording),
            remoteControl = remoteControl(enabledServicesAreSystem),
        )
}

/**
 * A [ContextProvider] that reports whatever it was last told: for tests, and
 * for apps that gather the signals themselves. Thread-safe.
 */
class FixedContextProvider(@Volatile var current: CallSignals = UNKNOWN) : ContextProvider {
    override fun signals(): CallSignals = current

    companion object {
        /** Nothing known: what the core assumes without a provider. */
        val UNKNOWN = CallSignals(call = Signal.UNKNOWN, screenShared = Signal.UNKNOWN, remoteControl = Signal.UNKNOWN)
    }
}

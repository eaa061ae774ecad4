package dk.eid.authenticator.android

import android.accessibilityservice.AccessibilityServiceInfo
import android.content.Context
import android.content.pm.ApplicationInfo
import android.media.AudioManager
import android.view.accessibility.AccessibilityManager
import dk.eid.authenticator.CallSignalRules
import dk.eid.authenticator.ffi.CallSignals
import dk.eid.authenticator.ffi.ContextProvider

/**
 * The core's [ContextProvider] on Android (docs/integration.md, "Calls and
 * screen sharing"): a call from `AudioManager.getMode()`, remote control
 * from the enabled accessibility services that are not from the system.
 * Neither needs a permission; `TelephonyManager.getCallState()` is not used
 * because it needs `READ_PHONE_STATE`, which the core never asks for.
 *
 * Screen recording has no pull API: on Android 15 (API 35) and later the
 * activity that shows requests registers
 * `WindowManager.addScreenRecordingCallback` and passes each state to
 * [screenRecording]; before that it stays `null` (unknown).
 *
 * Thread-safe: the core calls [signals] from background threads; every
 * reading that fails becomes unknown instead of an exception.
 */
class PlatformContext(context: Context) : ContextProvider {
    private val audio: AudioManager? = context.getSystemService(AudioManager::class.java)
    private val accessibility: AccessibilityManager? = context.getSystemService(AccessibilityManager::class.java)

    /** Whether the app's window is being recorded or shared, as the platform last said; null: not known. */
    @Volatile
    var screenRecording: Boolean? = null

    override fun signals(): CallSignals = CallSignalRules.signals(
        audioMode = runCatching { audio?.mode }.getOrNull(),
        enabledServicesAreSystem = runCatching {
            accessibility
                ?.getEnabledAccessibilityServiceList(AccessibilityServiceInfo.FEEDBACK_ALL_MASK)
                ?.map(::isSystem)
        }.getOrNull(),
        recording = screenRecording,
    )

    private fun isSystem(service: AccessibilityServiceInfo): Boolean {
        val flags = service.resolveInfo?.serviceInfo?.applicationInfo?.flags ?: 0
        return flags and (ApplicationInfo.FLAG_SYSTEM or ApplicationInfo.FLAG_UPDATED_SYSTEM_APP) != 0
    }
}

package dk.eid.authenticator

import kotlin.time.Duration
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds
import kotlin.time.TimeMark
import kotlin.time.TimeSource
import kotlinx.coroutines.CoroutineDispatcher
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.flow.flow
import kotlinx.coroutines.withContext
import dk.eid.authenticator.ffi.AuthenticatorInfo
import dk.eid.authenticator.ffi.App
import dk.eid.authenticator.ffi.AppConfig
import dk.eid.authenticator.ffi.ContextProvider
import dk.eid.authenticator.ffi.DeviceEnrolment
import dk.eid.authenticator.ffi.EnrolmentStatus
import dk.eid.authenticator.ffi.EventView
import dk.eid.authenticator.ffi.HardwareAuthenticatorInfo
import dk.eid.authenticator.ffi.JournalAlarm
import dk.eid.authenticator.ffi.EidException
import dk.eid.authenticator.ffi.KeyStore
import dk.eid.authenticator.ffi.Language
import dk.eid.authenticator.ffi.PendingActivation
import dk.eid.authenticator.ffi.PendingContactChange
import dk.eid.authenticator.ffi.PendingDevice
import dk.eid.authenticator.ffi.PersonSummary
import dk.eid.authenticator.ffi.Receipt
import dk.eid.authenticator.ffi.RequestId
import dk.eid.authenticator.ffi.RequestView
import dk.eid.authenticator.ffi.ServerErrorCode
import dk.eid.authenticator.ffi.UnlockToken

/**
 * The eID authenticator for Kotlin apps: a coroutine-friendly wrapper around the
 * Rust core (the generated [dk.eid.authenticator.ffi.App]).
 *
 * - Every call that may touch the network or the disk is a `suspend` function
 *   that runs on [ioDispatcher]; none blocks the caller's thread.
 * - [requests] is a [StateFlow] of the pending requests of every authenticator. It is
 *   updated by [refresh] (network), [reload] (local store only) and after every
 *   decision, so a UI only has to collect it.
 * - [timeLeft] and [countdown] give a ticking deadline per request, measured on
 *   the monotonic clock from when the view was received.
 * - Errors are [EidException]s (for example [EidException.WrongPin],
 *   [EidException.Expired]); see [retryAfter] and [isNetworkFailure].
 *
 * One instance per app process. It holds native memory: [close] it (or use
 * `use {}`) when the app no longer needs it.
 */
class EidApp private constructor(
    private val core: App,
    /** Language of the request views this instance produces. */
    val language: Language,
    private val ioDispatcher: CoroutineDispatcher,
    private val timeSource: TimeSource.WithComparableMarks,
) : AutoCloseable {

    private val _requests = MutableStateFlow<List<RequestView>>(emptyList())
    private val _authenticators = MutableStateFlow<List<AuthenticatorInfo>>(emptyList())
    private val _household = MutableStateFlow<List<PersonSummary>>(emptyList())

    /** Request id → the monotonic time at which it expires. */
    private val deadlines = java.util.concurrent.ConcurrentHashMap<RequestId, TimeMark>()

    /**
     * The pending requests of every active authenticator, in the core's order.
     * Filled from the local store by [open]; [refresh] pulls new ones.
     */
    val requests: StateFlow<List<RequestView>> = _requests.asStateFlow()

    /** The authenticators on this phone, oldest first. Updated by [reloadAuthenticators] and by changes made through this object. */
    val authenticators: StateFlow<List<AuthenticatorInfo>> = _authenticators.asStateFlow()

    /**
     * The household's first screen: each person on this phone with how many
     * requests wait for them, and nothing about what those requests say.
     * Updated whenever [requests] is. Show a person's requests only after they
     * were chosen, with [requestsFor].
     */
    val household: StateFlow<List<PersonSummary>> = _household.asStateFlow()

    companion object {
        /**
         * Opens (creating it if needed) the core's database and pinned HTTPS
         * client. No network I/O happens here; the stored authenticators and requests
         * are loaded into [authenticators] and [requests].
         *
         * @param config where the database is, which server and TLS pin to use.
         * @param keyStore the platform keystore (Android Keystore in apps, a
         *   software one in tests). It must be thread-safe: the core calls it
         *   from background threads.
         * @param ioDispatcher where blocking and native calls run.
         * @throws EidException.Config for a bad URL or pin, or
         *   [EidException.Internal] when the database cannot be opened.
         */
        @Throws(EidException::class)
        suspend fun open(
            config: AppConfig,
            keyStore: KeyStore,
            ioDispatcher: CoroutineDispatcher = Dispatchers.IO,
        ): EidApp = withContext(ioDispatcher) {
            val core = App.open(config, keyStore)
            val eid = EidApp(core, config.language, ioDispatcher, TimeSource.Monotonic)
            try {
                eid.reloadNow()
            } catch (e: Throwable) {
                eid.close()
                throw e
            }
            eid
        }
    }

    /**
     * Activates an authenticator with the user ID and activation code from support,
     * protecting it with [pin] (checked against the PIN policy first).
     *
     * @throws EidException.PinRefused when the PIN breaks the policy;
     *   [EidException.Rejected] with code [ServerErrorCode.INVALID_ACTIVATION_CODE] for a wrong code;
     *   [EidException.Network] when the server cannot be reached (then
     *   [resumeActivation] finishes the activation later).
     */
    @Throws(EidException::class)
    suspend fun activate(userId: String, activationCode: String, pin: String): AuthenticatorInfo = io {
        core.activate(userId, activationCode, pin).also { reloadNow() }
    }

    /** Re-sends an activation interrupted by a network failure (same keys, no PIN). */
    @Throws(EidException::class)
    suspend fun resumeActivation(activationCode: String): AuthenticatorInfo = io {
        core.resumeActivation(activationCode).also { reloadNow() }
    }

    /** The interrupted activation, if any. */
    @Throws(EidException::class)
    suspend fun pendingActivation(): PendingActivation? = io { core.pendingActivation() }

    /** Discards an interrupted activation and its keys. */
    @Throws(EidException::class)
    suspend fun discardActivation(): Unit = io { core.discardActivation() }

    /**
     * Pulls the pending requests of every authenticator from the server in one round
     * trip, verifies them, publishes them on [requests] and returns them. Call it
     * when the app comes to the foreground (see [ForegroundPuller]).
     *
     * @throws EidException.Network when offline; [requests] then keeps the
     *   previously stored requests (with fresh countdowns).
     */
    @Throws(EidException::class)
    suspend fun refresh(): List<RequestView> = io {
        try {
            core.refresh().also(::publish)
        } catch (e: EidException) {
            // Keep showing what is stored, with countdowns recomputed.
            runCatching { reloadNow() }
            throw e
        }
    }

    /**
     * Reloads [requests] and [authenticators] from the local store without the
     * network (countdowns are recomputed). Returns the requests.
     */
    @Throws(EidException::class)
    suspend fun reload(): List<RequestView> = io { reloadNow() }

    /**
     * The requests of the person chosen on the household screen (local store
     * only; countdowns recomputed).
     *
     * @throws EidException.UnknownRequest when the person is no longer on this phone.
     */
    @Throws(EidException::class)
    suspend fun requestsFor(person: PersonSummary): List<RequestView> = io {
        core.requestsFor(person.authenticatorId, language)
    }

    /** Reloads [authenticators] from the local store and returns them. */
    @Throws(EidException::class)
    suspend fun reloadAuthenticators(): List<AuthenticatorInfo> = io { core.authenticators().also { _authenticators.value = it } }

    /**
     * Checks the PIN for one request and returns a short-lived, single-use
     * unlock for [approve]. Each wrong PIN counts, also across restarts.
     *
     * @throws EidException.WrongPin with the attempts left;
     *   [EidException.LockedOut] while a wait runs (even for the right PIN);
     *   [EidException.NotActivated] once the PIN key was destroyed;
     *   [EidException.Expired] when the request ran out.
     */
    @Throws(EidException::class)
    suspend fun unlock(request: RequestView, pin: String): UnlockToken = io {
        try {
            core.unlock(request.authenticatorId, request.requestId, pin)
        } catch (e: EidException.Expired) {
            reloadNow()
            throw e
        }
    }

    /**
     * Approves the unlocked request once the person completed the swipe.
     * Returns the server's verified receipt; the request leaves [requests].
     *
     * Throws [EidException.TooFast] if the request was first shown (returned
     * by [refresh] or [reload]) less than the minimum read time ago (1500 ms by
     * default, `AppConfig.minReadMs`): nothing was signed and the
     * unlock is still valid; keep the swipe screen and approve again after
     * `waitMs`. Deny and report-fraud are never held back.
     *
     * @param swipeConfirmed must be true: approval needs the completed swipe.
     * @param bindingCode the code shown where the request was started, when the
     *   request has a [dk.eid.authenticator.ffi.WarningKind.BINDING_CODE_REQUIRED] warning.
     */
    @Throws(EidException::class)
    suspend fun approve(unlock: UnlockToken, swipeConfirmed: Boolean, bindingCode: String? = null): Receipt =
        decide { core.approve(unlock, swipeConfirmed, bindingCode) }

    /**
     * PIN and swipe in one call, for flows that collect both before deciding.
     * The unlock token is released right after use.
     */
    @Throws(EidException::class)
    suspend fun approve(
        request: RequestView,
        pin: String,
        swipeConfirmed: Boolean,
        bindingCode: String? = null,
    ): Receipt = unlock(request, pin).use { token -> approve(token, swipeConfirmed, bindingCode) }

    /**
     * Installs the platform's view of calls and screen sharing
     * ([dk.eid.authenticator.android.PlatformContext] in apps). Without one
     * every signal is unknown, and decisions say so. The request list is
     * re-read so it shows the warning at once.
     */
    @Throws(EidException::class)
    suspend fun setContextProvider(provider: ContextProvider): Unit = io {
        core.setContextProvider(provider)
        reloadNow()
    }

    /**
     * The person's "I started this myself" while a call, screen sharing or
     * remote control is on: the gate before the swipe
     * (`RequestView.needsStartedMyself`, `RequestView.callWarning`). After it
     * the list is re-read and the swipe may be enabled.
     *
     * @throws EidException.TooFast before the minimum read time is over
     *   (enable the confirmation only after it).
     */
    @Throws(EidException::class)
    suspend fun confirmStartedMyself(request: RequestView): Unit = io {
        core.confirmStartedMyself(request.authenticatorId, request.requestId)
        reloadNow()
    }

    /** Denies [request] (no PIN needed); it leaves [requests]. */
    @Throws(EidException::class)
    suspend fun deny(request: RequestView): Receipt = decide { core.deny(request.authenticatorId, request.requestId) }

    /** Denies [request] and reports it as fraud ("this wasn't me"); it leaves [requests]. */
    @Throws(EidException::class)
    suspend fun reportFraud(request: RequestView): Receipt =
        decide { core.reportFraud(request.authenticatorId, request.requestId) }

    /**
     * Blocks [authenticator]'s identity at once ("I suspect abuse"); no PIN needed.
     * The server cancels its pending requests and refuses new ones until
     * support unblocks; [authenticators] shows it as blocked and its requests leave
     * [requests].
     */
    @Throws(EidException::class)
    suspend fun blockIdentity(authenticator: AuthenticatorInfo) {
        io {
            core.blockIdentity(authenticator.authenticatorId)
            reloadNow()
        }
    }

    // ---------------------------------------------------------------- security feed

    /**
     * [authenticator]'s security feed, newest first, as of the last [refresh]: new
     * devices, contact changes, blocks, lockouts, fraud reports and (when
     * turned on) every use. Each entry says what to do if it wasn't them.
     */
    @Throws(EidException::class)
    suspend fun events(authenticator: AuthenticatorInfo): List<EventView> = io { core.events(authenticator.authenticatorId, language) }

    /**
     * Decisions the server holds for [authenticator] that this phone never signed,
     * found by comparing each pull with the phone's own hash-chained journal:
     * someone has a copy of its keys. Show this as the most serious warning
     * and offer [blockIdentity].
     */
    @Throws(EidException::class)
    suspend fun journalAlarms(authenticator: AuthenticatorInfo): List<JournalAlarm> =
        io { core.journalAlarms(authenticator.authenticatorId) }

    /** Whether [authenticator]'s identity sends a notice on every use (as last pulled). */
    @Throws(EidException::class)
    suspend fun notifyEveryUse(authenticator: AuthenticatorInfo): Boolean = io { core.notifyEveryUse(authenticator.authenticatorId) }

    /** Turns "notify me on every use" on for [authenticator]'s identity (no PIN: it only adds notices). */
    @Throws(EidException::class)
    suspend fun turnOnNotifyEveryUse(authenticator: AuthenticatorInfo): Unit =
        io { core.turnOnNotifyEveryUse(authenticator.authenticatorId) }

    /**
     * Turns "notify me on every use" off for [authenticator]'s identity. Needs the
     * person's [pin] (checked and counted like any PIN entry), so an unlocked
     * phone in someone else's hand cannot silence the notices; the person is
     * told on every channel.
     */
    @Throws(EidException::class)
    suspend fun turnOffNotifyEveryUse(authenticator: AuthenticatorInfo, pin: String): Unit =
        io { core.turnOffNotifyEveryUse(authenticator.authenticatorId, pin) }

    // ---------------------------------------------------------------- hardware authenticators

    /**
     * The person's code devices and chip (kind, masked serial, state, added,
     * last use, works from), asked from the server now (no PIN: it only reads).
     */
    @Throws(EidException::class)
    suspend fun hardwareAuthenticators(authenticator: AuthenticatorInfo): List<HardwareAuthenticatorInfo> =
        io { core.hardwareAuthenticators(authenticator.authenticatorId) }

    /**
     * Deactivates [hardware] (a chip in its waiting period: cancels it) after
     * the person swiped ([swipeConfirmed]) and typed the [pin] (checked and
     * counted like any PIN entry); the person is told on every channel.
     */
    @Throws(EidException::class)
    suspend fun deactivateHardware(
        authenticator: AuthenticatorInfo,
        hardware: HardwareAuthenticatorInfo,
        pin: String,
        swipeConfirmed: Boolean,
    ): HardwareAuthenticatorInfo =
        io { core.deactivateHardware(authenticator.authenticatorId, hardware.id, pin, swipeConfirmed) }

    // ---------------------------------------------------------------- new device from an existing one

    /**
     * New phone: asks to be added to [userId]'s identity, which already has a
     * device, protecting the new authenticator with [pin]. Show the returned code
     * (and its `qrPayload` as a QR code) for the existing phone to approve; then
     * call [pollDeviceEnrolment] until it is activated after the waiting period.
     *
     * @throws EidException.PinRefused when the PIN breaks the policy;
     *   [EidException.Rejected] with [ServerErrorCode.DEVICE_LIMIT_REACHED] at the device cap.
     */
    @Throws(EidException::class)
    suspend fun startDeviceEnrolment(userId: String, pin: String): DeviceEnrolment =
        io { core.startDeviceEnrolment(userId, pin) }

    /** New phone: the enrolment in progress, if any (after an app restart). */
    @Throws(EidException::class)
    suspend fun pendingDeviceEnrolment(): DeviceEnrolment? = io { core.pendingDeviceEnrolment() }

    /** New phone: re-sends an enrolment whose answer was lost (same keys). */
    @Throws(EidException::class)
    suspend fun resumeDeviceEnrolment(): DeviceEnrolment = io { core.resumeDeviceEnrolment() }

    /**
     * New phone: how the enrolment stands. On [EnrolmentStatus.Activated] the
     * authenticator is stored and [authenticators] updated.
     *
     * @throws EidException.EnrolmentRefused when the existing phone refused or
     *   cancelled it, it expired, or the identity was blocked (keys deleted).
     */
    @Throws(EidException::class)
    suspend fun pollDeviceEnrolment(): EnrolmentStatus = io {
        core.pollDeviceEnrolment().also { if (it is EnrolmentStatus.Activated) reloadNow() }
    }

    /** New phone: gives up the enrolment and deletes its keys. */
    @Throws(EidException::class)
    suspend fun discardDeviceEnrolment(): Unit = io { core.discardDeviceEnrolment() }

    /** Existing phone: new devices being added to [authenticator]'s identity, as of the last [refresh]. */
    @Throws(EidException::class)
    suspend fun pendingDevices(authenticator: AuthenticatorInfo): List<PendingDevice> =
        io { core.pendingDevices(authenticator.authenticatorId) }

    /** Existing phone: cancels a new device being added ("not my phone"); no PIN. */
    @Throws(EidException::class)
    suspend fun cancelDeviceEnrolment(authenticator: AuthenticatorInfo, device: PendingDevice): Unit =
        io { core.cancelDeviceEnrolment(authenticator.authenticatorId, device.enrolmentId) }

    // ---------------------------------------------------------------- self-service changes

    /**
     * Open changes of [authenticator]'s phone number or e-mail (as of the last
     * [refresh]): what is being changed, and when it can complete at the
     * earliest. Show them with a cancel button.
     */
    @Throws(EidException::class)
    suspend fun pendingContactChanges(authenticator: AuthenticatorInfo): List<PendingContactChange> =
        io { core.pendingContactChanges(authenticator.authenticatorId) }

    /** Cancels an open contact change ("not me"); no PIN. */
    @Throws(EidException::class)
    suspend fun cancelContactChange(authenticator: AuthenticatorInfo, change: PendingContactChange): Unit =
        io { core.cancelContactChange(authenticator.authenticatorId, change.changeId) }

    /** Re-sends decisions signed before a network failure; returns how many the server confirmed. */
    @Throws(EidException::class)
    suspend fun retryUnsentDecisions(): Int = io {
        core.retryUnsentDecisions().toInt().also { if (it > 0) reloadNow() }
    }

    /**
     * Changes [authenticator]'s PIN; needs the old one (counted like an unlock).
     *
     * @throws EidException.WrongPin for a wrong [oldPin];
     *   [EidException.PinRefused] when [newPin] breaks the policy.
     */
    @Throws(EidException::class)
    suspend fun changePin(authenticator: AuthenticatorInfo, oldPin: String, newPin: String): Unit =
        io { core.changePin(authenticator.authenticatorId, oldPin, newPin) }

    /** Removes [authenticator] and its keys from this phone. */
    @Throws(EidException::class)
    suspend fun removeAuthenticator(authenticator: AuthenticatorInfo): Unit = io {
        core.removeAuthenticator(authenticator.authenticatorId)
        reloadNow()
    }

    /**
     * Time left for [request] now, counted down on the monotonic clock from
     * when its view was published on [requests]; zero once expired.
     */
    fun timeLeft(request: RequestView): Duration {
        val mark = deadlines[request.requestId] ?: return request.timeLeftMs.toLong().milliseconds
        val elapsedPastDeadline = mark.elapsedNow()
        return if (elapsedPastDeadline.isNegative()) -elapsedPastDeadline else Duration.ZERO
    }

    /**
     * A countdown for [request]: emits [timeLeft] every [tick] and completes
     * after emitting zero. When it reaches zero the request is dropped from
     * [requests] (the core refuses to decide it from then on anyway).
     */
    fun countdown(request: RequestView, tick: Duration = 1.seconds): Flow<Duration> = flow {
        require(tick.isPositive()) { "tick must be positive" }
        while (true) {
            val left = timeLeft(request)
            emit(left)
            if (left == Duration.ZERO) break
            delay(minOf(tick, left))
        }
        _requests.value = _requests.value.filterNot { it.requestId == request.requestId }
    }

    /** Releases the native core. Further calls fail. */
    override fun close() {
        core.close()
    }

    private suspend fun <T> io(block: suspend () -> T): T = withContext(ioDispatcher) { block() }

    private suspend fun decide(call: suspend () -> Receipt): Receipt = withContext(ioDispatcher) {
        try {
            call().also { reloadNow() }
        } catch (e: EidException) {
            // Expired, already decided, unknown: the stored list changed; show it.
            runCatching { reloadNow() }
            throw e
        }
    }

    private fun reloadNow(): List<RequestView> {
        _authenticators.value = core.authenticators()
        return core.requests(language).also(::publish)
    }

    private fun publish(views: List<RequestView>) {
        _household.value = core.household(language)
        val now = timeSource.markNow()
        val ids = views.mapTo(HashSet()) { it.requestId }
        deadlines.keys.retainAll(ids)
        for (v in views) deadlines[v.requestId] = now + v.timeLeftMs.toLong().milliseconds
        _requests.value = views
    }
}

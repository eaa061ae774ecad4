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
import dk.eid.authenticator.ffi.AccountInfo
import dk.eid.authenticator.ffi.Authenticator
import dk.eid.authenticator.ffi.AuthenticatorConfig
import dk.eid.authenticator.ffi.DeviceEnrolment
import dk.eid.authenticator.ffi.EnrolmentStatus
import dk.eid.authenticator.ffi.EventView
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
 * Rust core (the generated [dk.eid.authenticator.ffi.Authenticator]).
 *
 * - Every call that may touch the network or the disk is a `suspend` function
 *   that runs on [ioDispatcher]; none blocks the caller's thread.
 * - [requests] is a [StateFlow] of the pending requests of every account. It is
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
class EidAuthenticator private constructor(
    private val core: Authenticator,
    /** Language of the request views this instance produces. */
    val language: Language,
    private val ioDispatcher: CoroutineDispatcher,
    private val timeSource: TimeSource.WithComparableMarks,
) : AutoCloseable {

    private val _requests = MutableStateFlow<List<RequestView>>(emptyList())
    private val _accounts = MutableStateFlow<List<AccountInfo>>(emptyList())
    private val _household = MutableStateFlow<List<PersonSummary>>(emptyList())

    /** Request id → the monotonic time at which it expires. */
    private val deadlines = java.util.concurrent.ConcurrentHashMap<RequestId, TimeMark>()

    /**
     * The pending requests of every active account, in the core's order.
     * Filled from the local store by [open]; [refresh] pulls new ones.
     */
    val requests: StateFlow<List<RequestView>> = _requests.asStateFlow()

    /** The accounts on this phone, oldest first. Updated by [reloadAccounts] and by changes made through this object. */
    val accounts: StateFlow<List<AccountInfo>> = _accounts.asStateFlow()

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
         * client. No network I/O happens here; the stored accounts and requests
         * are loaded into [accounts] and [requests].
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
            config: AuthenticatorConfig,
            keyStore: KeyStore,
            ioDispatcher: CoroutineDispatcher = Dispatchers.IO,
        ): EidAuthenticator = withContext(ioDispatcher) {
            val core = Authenticator.open(config, keyStore)
            val eid = EidAuthenticator(core, config.language, ioDispatcher, TimeSource.Monotonic)
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
     * Activates an account with the user ID and activation code from support,
     * protecting it with [pin] (checked against the PIN policy first).
     *
     * @throws EidException.PinRefused when the PIN breaks the policy;
     *   [EidException.Rejected] with code [ServerErrorCode.INVALID_ACTIVATION_CODE] for a wrong code;
     *   [EidException.Network] when the server cannot be reached (then
     *   [resumeActivation] finishes the activation later).
     */
    @Throws(EidException::class)
    suspend fun activate(userId: String, activationCode: String, pin: String): AccountInfo = io {
        core.activate(userId, activationCode, pin).also { reloadNow() }
    }

    /** Re-sends an activation interrupted by a network failure (same keys, no PIN). */
    @Throws(EidException::class)
    suspend fun resumeActivation(activationCode: String): AccountInfo = io {
        core.resumeActivation(activationCode).also { reloadNow() }
    }

    /** The interrupted activation, if any. */
    @Throws(EidException::class)
    suspend fun pendingActivation(): PendingActivation? = io { core.pendingActivation() }

    /** Discards an interrupted activation and its keys. */
    @Throws(EidException::class)
    suspend fun discardActivation(): Unit = io { core.discardActivation() }

    /**
     * Pulls the pending requests of every account from the server in one round
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
     * Reloads [requests] and [accounts] from the local store without the
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
        core.requestsFor(person.accountId, language)
    }

    /** Reloads [accounts] from the local store and returns them. */
    @Throws(EidException::class)
    suspend fun reloadAccounts(): List<AccountInfo> = io { core.accounts().also { _accounts.value = it } }

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
            core.unlock(request.accountId, request.requestId, pin)
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
     * default, `AuthenticatorConfig.minReadMs`): nothing was signed and the
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

    /** Denies [request] (no PIN needed); it leaves [requests]. */
    @Throws(EidException::class)
    suspend fun deny(request: RequestView): Receipt = decide { core.deny(request.accountId, request.requestId) }

    /** Denies [request] and reports it as fraud ("this wasn't me"); it leaves [requests]. */
    @Throws(EidException::class)
    suspend fun reportFraud(request: RequestView): Receipt =
        decide { core.reportFraud(request.accountId, request.requestId) }

    /**
     * Blocks [account]'s identity at once ("I suspect abuse"); no PIN needed.
     * The server cancels its pending requests and refuses new ones until
     * support unblocks; [accounts] shows it as blocked and its requests leave
     * [requests].
     */
    @Throws(EidException::class)
    suspend fun blockIdentity(account: AccountInfo) {
        io {
            core.blockIdentity(account.accountId)
            reloadNow()
        }
    }

    // ---------------------------------------------------------------- security feed

    /**
     * [account]'s security feed, newest first, as of the last [refresh]: new
     * devices, contact changes, blocks, lockouts, fraud reports and (when
     * turned on) every use. Each entry says what to do if it wasn't them.
     */
    @Throws(EidException::class)
    suspend fun events(account: AccountInfo): List<EventView> = io { core.events(account.accountId, language) }

    /**
     * Decisions the server holds for [account] that this phone never signed,
     * found by comparing each pull with the phone's own hash-chained journal:
     * someone has a copy of its keys. Show this as the most serious warning
     * and offer [blockIdentity].
     */
    @Throws(EidException::class)
    suspend fun journalAlarms(account: AccountInfo): List<JournalAlarm> =
        io { core.journalAlarms(account.accountId) }

    /** Whether [account]'s identity sends a notice on every use (as last pulled). */
    @Throws(EidException::class)
    suspend fun notifyEveryUse(account: AccountInfo): Boolean = io { core.notifyEveryUse(account.accountId) }

    /** Turns "notify me on every use" on for [account]'s identity (no PIN: it only adds notices). */
    @Throws(EidException::class)
    suspend fun turnOnNotifyEveryUse(account: AccountInfo): Unit =
        io { core.turnOnNotifyEveryUse(account.accountId) }

    /**
     * Turns "notify me on every use" off for [account]'s identity. Needs the
     * person's [pin] (checked and counted like any PIN entry), so an unlocked
     * phone in someone else's hand cannot silence the notices; the person is
     * told on every channel.
     */
    @Throws(EidException::class)
    suspend fun turnOffNotifyEveryUse(account: AccountInfo, pin: String): Unit =
        io { core.turnOffNotifyEveryUse(account.accountId, pin) }

    // ---------------------------------------------------------------- new device from an existing one

    /**
     * New phone: asks to be added to [userId]'s identity, which already has a
     * device, protecting the new account with [pin]. Show the returned code
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
     * account is stored and [accounts] updated.
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

    /** Existing phone: new devices being added to [account]'s identity, as of the last [refresh]. */
    @Throws(EidException::class)
    suspend fun pendingDevices(account: AccountInfo): List<PendingDevice> =
        io { core.pendingDevices(account.accountId) }

    /** Existing phone: cancels a new device being added ("not my phone"); no PIN. */
    @Throws(EidException::class)
    suspend fun cancelDeviceEnrolment(account: AccountInfo, device: PendingDevice): Unit =
        io { core.cancelDeviceEnrolment(account.accountId, device.enrolmentId) }

    // ---------------------------------------------------------------- self-service changes

    /**
     * Open changes of [account]'s phone number or e-mail (as of the last
     * [refresh]): what is being changed, and when it can complete at the
     * earliest. Show them with a cancel button.
     */
    @Throws(EidException::class)
    suspend fun pendingContactChanges(account: AccountInfo): List<PendingContactChange> =
        io { core.pendingContactChanges(account.accountId) }

    /** Cancels an open contact change ("not me"); no PIN. */
    @Throws(EidException::class)
    suspend fun cancelContactChange(account: AccountInfo, change: PendingContactChange): Unit =
        io { core.cancelContactChange(account.accountId, change.changeId) }

    /** Re-sends decisions signed before a network failure; returns how many the server confirmed. */
    @Throws(EidException::class)
    suspend fun retryUnsentDecisions(): Int = io {
        core.retryUnsentDecisions().toInt().also { if (it > 0) reloadNow() }
    }

    /**
     * Changes [account]'s PIN; needs the old one (counted like an unlock).
     *
     * @throws EidException.WrongPin for a wrong [oldPin];
     *   [EidException.PinRefused] when [newPin] breaks the policy.
     */
    @Throws(EidException::class)
    suspend fun changePin(account: AccountInfo, oldPin: String, newPin: String): Unit =
        io { core.changePin(account.accountId, oldPin, newPin) }

    /** Removes [account] and its keys from this phone. */
    @Throws(EidException::class)
    suspend fun removeAccount(account: AccountInfo): Unit = io {
        core.removeAccount(account.accountId)
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
        _accounts.value = core.accounts()
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

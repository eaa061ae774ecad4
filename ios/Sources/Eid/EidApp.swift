@_exported import EidFFI
import Foundation

/// How to open the authenticator: where its database lives and which server
/// (with its pinned TLS key) it talks to.
public struct AppConfiguration: Sendable, Hashable {
    /// The app's SQLite file, in the app's private storage.
    public var databaseURL: URL
    /// The server, `https://host:port`.
    public var serverURL: URL
    /// The server's TLS key pin, `sha256/<base64>`.
    public var serverSPKIPin: String
    /// Language of the texts in ``RequestView``.
    public var language: Language
    /// PBKDF2 iterations for new PIN keys. Leave `nil` in apps: the core then
    /// calibrates on the device. A fixed low value is for tests only.
    public var kdfIterations: UInt32?
    /// Minimum read time in milliseconds: ``EidApp/approve(_:swipeConfirmed:bindingCode:)``
    /// throws `EidError.TooFast` until the request was first shown this long
    /// ago. Leave `nil` in apps (the core's default, 1500 ms); a small value is
    /// for tests only.
    public var minReadMs: UInt64?
    /// Opt-in to a keystore that keeps the device key in software, for tests:
    /// release builds of the library refuse such a keystore with
    /// `EidError.SoftwareKeyStoreRefused` unless this is exactly
    /// "tests only: device key in plain files". Leave `nil` in apps.
    public var allowSoftwareKeyStore: String?

    /// Creates a configuration.
    public init(
        databaseURL: URL,
        serverURL: URL,
        serverSPKIPin: String,
        language: Language = .danish,
        kdfIterations: UInt32? = nil,
        minReadMs: UInt64? = nil,
        allowSoftwareKeyStore: String? = nil
    ) {
        self.databaseURL = databaseURL
        self.serverURL = serverURL
        self.serverSPKIPin = serverSPKIPin
        self.language = language
        self.kdfIterations = kdfIterations
        self.minReadMs = minReadMs
        self.allowSoftwareKeyStore = allowSoftwareKeyStore
    }

    var ffi: AppConfig {
        AppConfig(
            databasePath: databaseURL.path,
            serverUrl: serverURL.absoluteString,
            serverSpkiPin: serverSPKIPin,
            language: language,
            kdfIterations: kdfIterations,
            minReadMs: minReadMs,
            allowSoftwareKeystore: allowSoftwareKeyStore
        )
    }
}

/// The eID authenticator for Swift apps: async/await over the Rust core, with
/// the pending-request list published as an `AsyncStream`.
///
/// One instance per app. Every method that talks to the server is `async` and
/// throws ``EidError``. After each pull or decision the current request list
/// is sent to every stream from ``requestUpdates()``.
///
/// The same class, with the same method names where Swift allows, as the
/// Kotlin shell's `EidApp`.
///
/// ```swift
/// let eid = try EidApp(configuration: config, keyStore: SecureEnclaveKeyStore())
/// for await requests in await eid.requestUpdates() { render(requests) }
/// ```
public actor EidApp {
    /// The generated FFI object (thread-safe). Use it for calls this wrapper
    /// does not cover.
    public nonisolated let core: App
    /// The configuration it was opened with.
    public nonisolated let configuration: AppConfiguration

    /// The latest request list (the last pull, or local state after a decision).
    public private(set) var requests: [RequestView] = []
    private var subscribers: [UUID: AsyncStream<[RequestView]>.Continuation] = [:]

    /// Opens (creating if needed) the database; does no network I/O.
    ///
    /// - Parameters:
    ///   - configuration: database, server and language.
    ///   - keyStore: the platform keystore (``SecureEnclaveKeyStore`` on iOS).
    /// - Throws: ``EidError`` (`Config`, `Internal`, `KeyStore`).
    public init(configuration: AppConfiguration, keyStore: any KeyStore) throws {
        self.configuration = configuration
        self.core = try App.open(config: configuration.ffi, keystore: keyStore)
        self.requests = (try? core.requests(language: configuration.language)) ?? []
    }

    // MARK: Request list

    /// A stream of the request list: the current list at once, then every
    /// change. Ends when the consumer stops iterating.
    public func requestUpdates() -> AsyncStream<[RequestView]> {
        let (stream, continuation) = AsyncStream.makeStream(
            of: [RequestView].self, bufferingPolicy: .bufferingNewest(1))
        let id = UUID()
        subscribers[id] = continuation
        continuation.yield(requests)
        continuation.onTermination = { [weak self] _ in
            guard let self else { return }
            Task { await self.removeSubscriber(id) }
        }
        return stream
    }

    private func removeSubscriber(_ id: UUID) {
        subscribers[id] = nil
    }

    private func publish(_ list: [RequestView]) {
        requests = list
        for continuation in subscribers.values {
            continuation.yield(list)
        }
    }

    /// Re-reads the stored requests without the network (countdowns are
    /// recomputed) and publishes them.
    @discardableResult
    public func reload() throws -> [RequestView] {
        let list = try core.requests(language: configuration.language)
        publish(list)
        return list
    }

    /// Pulls the pending requests of every authenticator in one round trip, verifies
    /// them and publishes the list. Call it when the app comes to the
    /// foreground (see ``ForegroundPuller``); there is no push.
    @discardableResult
    public func refresh() async throws -> [RequestView] {
        let list = try await core.refresh()
        publish(list)
        return list
    }

    // MARK: Authenticators

    /// Activates an authenticator with the user ID and activation code from support;
    /// the PIN is checked against the PIN policy first.
    public func activate(userID: String, activationCode: String, pin: String) async throws -> AuthenticatorInfo {
        try await core.activate(userId: userID, activationCode: activationCode, pin: pin)
    }

    /// Re-sends an interrupted activation (same keys, no PIN needed).
    public func resumeActivation(activationCode: String) async throws -> AuthenticatorInfo {
        try await core.resumeActivation(activationCode: activationCode)
    }

    /// The interrupted activation, if any.
    public func pendingActivation() throws -> PendingActivation? {
        try core.pendingActivation()
    }

    /// Discards an interrupted activation and its keys.
    public func discardActivation() throws {
        try core.discardActivation()
    }

    /// The authenticators on this phone, oldest first.
    public func authenticators() throws -> [AuthenticatorInfo] {
        try core.authenticators()
    }

    // MARK: Household

    /// The household's first screen: each person on this phone with how many
    /// requests wait for them, and nothing about what those requests say
    /// (local store only). Show details only after a person is chosen, with
    /// ``requests(for:)``.
    public func household() throws -> [PersonSummary] {
        try core.household(language: configuration.language)
    }

    /// The requests of the person chosen on the household screen (local store
    /// only; countdowns recomputed).
    ///
    /// - Throws: ``EidError/UnknownRequest`` when the person is no longer on this phone.
    public func requests(for person: PersonSummary) throws -> [RequestView] {
        try core.requestsFor(authenticatorId: person.authenticatorId, language: configuration.language)
    }

    /// Removes an authenticator and its keys from this phone.
    public func removeAuthenticator(_ authenticator: AuthenticatorInfo) throws {
        try core.removeAuthenticator(authenticatorId: authenticator.authenticatorId)
        try reload()
    }

    /// Blocks the authenticator's identity at once ("I suspect abuse"); no PIN
    /// needed. The server cancels its pending requests and refuses new ones
    /// until support unblocks; the authenticator then shows as blocked.
    public func blockIdentity(_ authenticator: AuthenticatorInfo) async throws {
        try await core.blockIdentity(authenticatorId: authenticator.authenticatorId)
        _ = try? reload()
    }

    /// Changes an authenticator's PIN; needs the old one (counted like an unlock).
    ///
    /// - Throws: ``EidError/WrongPin(attemptsLeft:retryAfterMs:)`` for a wrong
    ///   old PIN; ``EidError/PinRefused(kind:reason:)`` when the new one
    ///   breaks the policy.
    public func changePin(for authenticator: AuthenticatorInfo, oldPin: String, newPin: String) async throws {
        try await core.changePin(authenticatorId: authenticator.authenticatorId, oldPin: oldPin, newPin: newPin)
    }

    // MARK: Security feed

    /// The authenticator's security feed, newest first, as of the last ``refresh()``:
    /// new devices, contact changes, blocks, lockouts, fraud reports and (when
    /// turned on) every use. Each entry says what to do if it wasn't them.
    public func events(for authenticator: AuthenticatorInfo) throws -> [EventView] {
        try core.events(authenticatorId: authenticator.authenticatorId, language: configuration.language)
    }

    /// Decisions the server holds for the authenticator that this phone never
    /// signed, found by comparing each pull with the phone's own hash-chained
    /// journal: someone has a copy of its keys. Show this as the most serious
    /// warning and offer ``blockIdentity(_:)``.
    public func journalAlarms(for authenticator: AuthenticatorInfo) throws -> [JournalAlarm] {
        try core.journalAlarms(authenticatorId: authenticator.authenticatorId)
    }

    /// Whether the authenticator's identity sends a notice on every use (as last pulled).
    public func notifyEveryUse(for authenticator: AuthenticatorInfo) throws -> Bool {
        try core.notifyEveryUse(authenticatorId: authenticator.authenticatorId)
    }

    /// Turns "notify me on every use" on (no PIN: it only adds notices).
    public func turnOnNotifyEveryUse(for authenticator: AuthenticatorInfo) async throws {
        try await core.turnOnNotifyEveryUse(authenticatorId: authenticator.authenticatorId)
    }

    /// Turns "notify me on every use" off. Needs the person's PIN (checked and
    /// counted like any PIN entry), so an unlocked phone in someone else's hand
    /// cannot silence the notices; the person is told on every channel.
    public func turnOffNotifyEveryUse(for authenticator: AuthenticatorInfo, pin: String) async throws {
        try await core.turnOffNotifyEveryUse(authenticatorId: authenticator.authenticatorId, pin: pin)
    }

    // MARK: Hardware authenticators

    /// The person's code devices and chip (kind, masked serial, state, added,
    /// last use, works from), asked from the server now (no PIN: it only reads).
    public func hardwareAuthenticators(for authenticator: AuthenticatorInfo) async throws -> [HardwareAuthenticatorInfo] {
        try await core.hardwareAuthenticators(authenticatorId: authenticator.authenticatorId)
    }

    /// Deactivates `hardware` (a chip in its waiting period: cancels it) after
    /// the person swiped (`swipeConfirmed`) and typed the PIN (checked and
    /// counted like any PIN entry); the person is told on every channel.
    public func deactivateHardware(
        _ hardware: HardwareAuthenticatorInfo, for authenticator: AuthenticatorInfo, pin: String, swipeConfirmed: Bool
    ) async throws -> HardwareAuthenticatorInfo {
        try await core.deactivateHardware(
            authenticatorId: authenticator.authenticatorId, hardwareId: hardware.id, pin: pin,
            swipeConfirmed: swipeConfirmed)
    }

    // MARK: New device from an existing one

    /// New phone: asks to be added to `userID`'s identity, which already has a
    /// device. Show the returned code (and `qrPayload` as a QR code) for the
    /// existing phone; then poll with ``pollDeviceEnrolment()``.
    public func startDeviceEnrolment(userID: String, pin: String) async throws -> DeviceEnrolment {
        try await core.startDeviceEnrolment(userId: userID, pin: pin)
    }

    /// New phone: the enrolment in progress, if any (after an app restart).
    public func pendingDeviceEnrolment() throws -> DeviceEnrolment? {
        try core.pendingDeviceEnrolment()
    }

    /// New phone: re-sends an enrolment whose answer was lost (same keys).
    public func resumeDeviceEnrolment() async throws -> DeviceEnrolment {
        try await core.resumeDeviceEnrolment()
    }

    /// New phone: how the enrolment stands; the authenticator is stored once it is
    /// activated after the waiting period.
    ///
    /// - Throws: ``EidError/EnrolmentRefused`` when the existing phone refused
    ///   or cancelled it, it expired, or the identity was blocked.
    public func pollDeviceEnrolment() async throws -> EnrolmentStatus {
        let status = try await core.pollDeviceEnrolment()
        if case .activated = status { _ = try? reload() }
        return status
    }

    /// New phone: gives up the enrolment and deletes its keys.
    public func discardDeviceEnrolment() throws {
        try core.discardDeviceEnrolment()
    }

    /// Existing phone: new devices being added to the authenticator's identity.
    public func pendingDevices(for authenticator: AuthenticatorInfo) throws -> [PendingDevice] {
        try core.pendingDevices(authenticatorId: authenticator.authenticatorId)
    }

    /// Existing phone: cancels a new device being added ("not my phone"); no PIN.
    public func cancelDeviceEnrolment(_ device: PendingDevice, for authenticator: AuthenticatorInfo) async throws {
        try await core.cancelDeviceEnrolment(
            authenticatorId: authenticator.authenticatorId, enrolmentId: device.enrolmentId)
    }

    // MARK: Contact changes

    /// Open changes of the authenticator's phone number or e-mail (as of the last
    /// ``refresh()``), with when each can complete at the earliest.
    public func pendingContactChanges(for authenticator: AuthenticatorInfo) throws -> [PendingContactChange] {
        try core.pendingContactChanges(authenticatorId: authenticator.authenticatorId)
    }

    /// Cancels an open contact change ("not me"); no PIN.
    public func cancelContactChange(_ change: PendingContactChange, for authenticator: AuthenticatorInfo) async throws {
        try await core.cancelContactChange(authenticatorId: authenticator.authenticatorId, changeId: change.changeId)
    }

    // MARK: Decisions

    /// Checks the PIN for one request and returns a short-lived, single-use
    /// unlock for it.
    ///
    /// - Throws: ``EidError/WrongPin(attemptsLeft:retryAfterMs:)``,
    ///   ``EidError/LockedOut(retryAfterMs:)``, ``EidError/Expired``, ...
    public func unlock(_ request: RequestView, pin: String) async throws -> UnlockToken {
        do {
            return try await core.unlock(
                authenticatorId: request.authenticatorId, requestId: request.requestId, pin: pin)
        } catch let error as EidError {
            try? reloadIfGone(error)
            throw error
        }
    }

    /// Approves the unlocked request once the swipe is complete and returns
    /// the server's verified receipt.
    ///
    /// Throws `EidError.TooFast(waitMs:)` if the request was first shown (a
    /// request list returned) less than the minimum read time ago (1500 ms
    /// by default, ``AppConfiguration/minReadMs``): nothing was
    /// signed and the unlock stays valid; approve again after `waitMs`. Deny
    /// and report-fraud are never held back.
    public func approve(
        _ unlock: UnlockToken, swipeConfirmed: Bool, bindingCode: String? = nil
    ) async throws -> Receipt {
        try await decided {
            try await core.approve(unlock: unlock, swipeConfirmed: swipeConfirmed, bindingCode: bindingCode)
        }
    }

    /// Installs the platform's view of calls and screen sharing
    /// (``PlatformContext`` in apps). Without one every signal is unknown, and
    /// decisions say so. The request list is re-read so it shows the warning.
    public func setContextProvider(_ provider: any ContextProvider) throws {
        try core.setContextProvider(provider: provider)
        try reload()
    }

    /// The person's "I started this myself" while a call, screen sharing or
    /// remote control is on: the gate before the swipe
    /// (`RequestView.needsStartedMyself`, `RequestView.callWarning`). The list
    /// is re-read afterwards.
    ///
    /// - Throws: `EidError.TooFast` before the minimum read time is over.
    public func confirmStartedMyself(_ request: RequestView) throws {
        try core.confirmStartedMyself(authenticatorId: request.authenticatorId, requestId: request.requestId)
        try reload()
    }

    /// Denies a request (no PIN needed).
    public func deny(_ request: RequestView) async throws -> Receipt {
        try await decided {
            try await core.deny(authenticatorId: request.authenticatorId, requestId: request.requestId)
        }
    }

    /// Denies a request and reports it as fraud ("this wasn't me").
    public func reportFraud(_ request: RequestView) async throws -> Receipt {
        try await decided {
            try await core.reportFraud(authenticatorId: request.authenticatorId, requestId: request.requestId)
        }
    }

    /// Re-sends decisions signed before a network failure; returns how many
    /// the server confirmed.
    @discardableResult
    public func retryUnsentDecisions() async throws -> UInt32 {
        let n = try await core.retryUnsentDecisions()
        _ = try? reload()
        return n
    }

    private func decided(_ body: () async throws -> Receipt) async throws -> Receipt {
        do {
            let receipt = try await body()
            _ = try? reload()
            return receipt
        } catch let error as EidError {
            try? reloadIfGone(error)
            throw error
        }
    }

    /// After an error that means the request is gone or decided, the local
    /// list is republished so the screen drops it.
    private func reloadIfGone(_ error: EidError) throws {
        switch error {
        case .Expired, .UnknownRequest, .AlreadyDecided, .NotActivated, .Blocked:
            try reload()
        default:
            break
        }
    }
}

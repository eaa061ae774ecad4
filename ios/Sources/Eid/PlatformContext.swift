import Foundation

#if canImport(CallKit)
import CallKit
#endif
#if canImport(UIKit)
import UIKit
#endif

/// How the iOS platform's readings become the core's call-context signals
/// (docs/integration.md, "Calls and screen sharing"). Platform-neutral, so
/// the Linux tests check every reading; ``PlatformContext`` feeds it from
/// CallKit and `UIScreen`.
///
/// A reading the platform could not give is `nil` and becomes
/// `Signal.unknown`, never `.off`: "could not see a call" is not "no call".
public enum CallSignalRules {
    /// A call from CallKit's observer: any call that has not ended is on.
    public static func call(activeCalls: Int?) -> Signal {
        guard let activeCalls else { return .unknown }
        return activeCalls > 0 ? .on : .off
    }

    /// Screen sharing, mirroring or recording from `UIScreen.isCaptured`.
    public static func screenShared(captured: Bool?) -> Signal {
        guard let captured else { return .unknown }
        return captured ? .on : .off
    }

    /// All signals. iOS lets no app control another, and tells an app
    /// nothing about other apps: remote control is always unknown.
    public static func signals(activeCalls: Int?, captured: Bool?) -> CallSignals {
        CallSignals(
            call: call(activeCalls: activeCalls),
            screenShared: screenShared(captured: captured),
            remoteControl: .unknown
        )
    }
}

/// A ``ContextProvider`` that reports whatever it was last told: for tests,
/// and for apps that gather the signals themselves. Thread-safe.
public final class FixedContextProvider: ContextProvider, @unchecked Sendable {
    private let lock = NSLock()
    private var value: CallSignals

    /// Nothing known: what the core assumes without a provider.
    public static let unknown = CallSignals(call: .unknown, screenShared: .unknown, remoteControl: .unknown)

    /// A provider that reports `signals` until told otherwise.
    public init(_ signals: CallSignals = FixedContextProvider.unknown) {
        value = signals
    }

    /// What it reports.
    public var current: CallSignals {
        get { lock.withLock { value } }
        set { lock.withLock { value = newValue } }
    }

    public func signals() -> CallSignals {
        current
    }
}

#if canImport(CallKit) && canImport(UIKit)
/// The core's ``ContextProvider`` on iOS: a call from `CXCallObserver`
/// (cellular calls and every VoIP app that reports its calls to CallKit),
/// screen sharing, mirroring or recording from `UIScreen.main.isCaptured`.
/// Remote control is unknown on iOS. Needs no permission.
///
/// `UIScreen` may be read on the main thread only, and the core asks from
/// background threads: the capture state is kept from
/// `UIScreen.capturedDidChangeNotification` and read here under a lock.
/// Create it on the main thread.
public final class PlatformContext: ContextProvider, @unchecked Sendable {
    // CXCallObserver is thread-safe for reading `calls`; the lock guards
    // `captured`, written on the main thread and read on the core's threads.
    private let observer = CXCallObserver()
    private let lock = NSLock()
    private var captured: Bool?
    private var token: NSObjectProtocol?

    @MainActor
    public init() {
        captured = UIScreen.main.isCaptured
        token = NotificationCenter.default.addObserver(
            forName: UIScreen.capturedDidChangeNotification, object: nil, queue: .main
        ) { [weak self] _ in
            MainActor.assumeIsolated {
                let now = UIScreen.main.isCaptured
                guard let self else { return }
                self.lock.withLock { self.captured = now }
            }
        }
    }

    deinit {
        if let token { NotificationCenter.default.removeObserver(token) }
    }

    public func signals() -> CallSignals {
        let calls = observer.calls.filter { !$0.hasEnded }.count
        let captured = lock.withLock { self.captured }
        return CallSignalRules.signals(activeCalls: calls, captured: captured)
    }
}
#endif

import Foundation

/// Pulls the pending requests when the app comes to the foreground and,
/// optionally, every `interval` while it stays there. There is no push: the
/// phone only learns about requests by pulling.
///
/// Tell it about the app's life cycle with ``appDidEnterForeground()`` and
/// ``appDidEnterBackground()`` (on iOS, ``observeApplicationLifecycle()`` does
/// that from UIKit's notifications). Pulls never overlap: a foreground signal
/// during a pull is coalesced into it.
public actor ForegroundPuller {
    /// What happened to one pull.
    public enum Event: Sendable {
        /// The pull succeeded with this many pending requests.
        case pulled(count: Int)
        /// The pull failed (for example ``EidError/Network(detail:)``); the
        /// list is unchanged and the next pull tries again.
        case failed(EidError)
    }

    private let eid: EidApp
    private let interval: Duration?
    private var loop: Task<Void, Never>?
    private var inFlight: Task<Void, Never>?
    private var eventContinuations: [UUID: AsyncStream<Event>.Continuation] = [:]

    /// Whether the app is in the foreground, as last told.
    public private(set) var isInForeground = false

    /// Creates a puller.
    ///
    /// - Parameters:
    ///   - eid: the authenticator to refresh.
    ///   - interval: if set, pull again this often while in the foreground.
    public init(eid: EidApp, interval: Duration? = nil) {
        self.eid = eid
        self.interval = interval
    }

    /// The outcome of every pull from now on.
    public func events() -> AsyncStream<Event> {
        let (stream, continuation) = AsyncStream.makeStream(of: Event.self)
        let id = UUID()
        eventContinuations[id] = continuation
        continuation.onTermination = { [weak self] _ in
            guard let self else { return }
            Task { await self.removeEvents(id) }
        }
        return stream
    }

    private func removeEvents(_ id: UUID) {
        eventContinuations[id] = nil
    }

    /// The app came to the foreground: pull now, then every `interval`.
    public func appDidEnterForeground() {
        isInForeground = true
        pullNow()
        guard loop == nil, let interval else { return }
        loop = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                guard !Task.isCancelled, let self else { return }
                await self.pullNow()
            }
        }
    }

    /// The app went to the background: stop pulling.
    public func appDidEnterBackground() {
        isInForeground = false
        loop?.cancel()
        loop = nil
    }

    /// Pulls once and waits for the result (coalesced with a pull already running).
    public func pull() async {
        pullNow()
        await inFlight?.value
    }

    private func pullNow() {
        guard inFlight == nil else { return }
        let eid = self.eid
        inFlight = Task { [weak self] in
            let event: Event
            do {
                event = .pulled(count: try await eid.refresh().count)
            } catch let error as EidError {
                event = .failed(error)
            } catch {
                event = .failed(.Internal(detail: String(describing: error)))
            }
            await self?.finished(event)
        }
    }

    private func finished(_ event: Event) {
        inFlight = nil
        for continuation in eventContinuations.values {
            continuation.yield(event)
        }
    }

    deinit {
        loop?.cancel()
        for continuation in eventContinuations.values {
            continuation.finish()
        }
    }
}

#if canImport(UIKit) && !os(watchOS)
import UIKit

extension ForegroundPuller {
    /// Follows UIKit's foreground/background notifications until the returned
    /// task is cancelled. Call it once, e.g. from the app's `init`.
    @discardableResult
    public nonisolated func observeApplicationLifecycle() -> Task<Void, Never> {
        Task { [weak self] in
            await withTaskGroup(of: Void.self) { group in
                group.addTask { [weak self] in
                    for await _ in NotificationCenter.default.notifications(
                        named: UIApplication.willEnterForegroundNotification).map({ _ in () }) {
                        await self?.appDidEnterForeground()
                    }
                }
                group.addTask { [weak self] in
                    for await _ in NotificationCenter.default.notifications(
                        named: UIApplication.didEnterBackgroundNotification).map({ _ in () }) {
                        await self?.appDidEnterBackground()
                    }
                }
            }
        }
    }
}
#endif

import Foundation
// Observation only on Apple platforms: Debian's Swift 6.0.3 ships a
// libswiftObservation.so that does not link (undefined
// swift::threading::fatal), and Linux has no SwiftUI to observe anyway.
#if canImport(Observation) && canImport(Darwin)
import Observation
#endif
#if canImport(Combine)
import Combine
#endif

/// The pending-request list for SwiftUI/UIKit screens, on the main actor.
///
/// It mirrors ``EidApp/requestUpdates()``. Where the
/// `Observation` framework exists on Apple platforms it is `Observable`
/// (SwiftUI re-renders on change); where `Combine` exists it is also an
/// `ObservableObject`. On Linux read ``requests`` or use the authenticator's
/// `AsyncStream`.
@MainActor
public final class RequestListModel {
    #if canImport(Observation) && canImport(Darwin)
    private let registrar = ObservationRegistrar()
    #endif
    #if canImport(Combine)
    /// Fires before ``requests`` changes (`ObservableObject`).
    public nonisolated let objectWillChange = ObservableObjectPublisher()
    #endif

    private var storage: [RequestView] = []
    private var task: Task<Void, Never>?

    /// The pending requests, most recent state.
    public private(set) var requests: [RequestView] {
        get {
            #if canImport(Observation) && canImport(Darwin)
            registrar.access(self, keyPath: \.requests)
            #endif
            return storage
        }
        set {
            #if canImport(Combine)
            objectWillChange.send()
            #endif
            #if canImport(Observation) && canImport(Darwin)
            registrar.withMutation(of: self, keyPath: \.requests) { storage = newValue }
            #else
            storage = newValue
            #endif
        }
    }

    /// Starts following the authenticator's request list.
    public init(eid: EidApp) {
        task = Task { [weak self] in
            for await list in await eid.requestUpdates() {
                guard let self else { return }
                self.requests = list
            }
        }
    }

    /// Stops following the authenticator.
    public func stop() {
        task?.cancel()
        task = nil
    }

}

#if canImport(Observation) && canImport(Darwin)
extension RequestListModel: Observable {}
#endif
#if canImport(Combine)
extension RequestListModel: ObservableObject {}
#endif

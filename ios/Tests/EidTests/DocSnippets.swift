// The Swift snippets of docs/integration.md and ios/README.md, as code the
// test target compiles; DocsMatchCodeTests checks that every ```swift block in
// those documents equals the region of the same name here. Edit a snippet
// here first, then paste it into the document (the test says which one
// differs). Nothing here runs: the functions only have to compile.
import Eid
import Foundation

#if !(canImport(Security) && os(iOS))
/// Compile-time stand-in for the iOS-only ``SecureEnclaveKeyStore`` (same
/// initializer), so that the snippets type-check on Linux and macOS. Never
/// called; keep it in step with ios/Sources/Eid/SecureEnclaveKeyStore.swift.
final class SecureEnclaveKeyStore: KeyStore, @unchecked Sendable {
    init(tagPrefix: String = "eid") {}
    func createKey(alias: String) throws -> Data { throw KeyStoreError.Failure(detail: "stand-in") }
    func sign(alias: String, message: Data) throws -> Data { throw KeyStoreError.Failure(detail: "stand-in") }
    func publicKey(alias: String) throws -> Data { throw KeyStoreError.Failure(detail: "stand-in") }
    func deleteKey(alias: String) throws {}
    func hardwareSecret(alias: String, input: Data) throws -> Data { throw KeyStoreError.Failure(detail: "stand-in") }
    func protection() -> KeyProtection { .secureEnclave }
}
#endif

#if !(canImport(UIKit) && !os(watchOS))
extension ForegroundPuller {
    /// Compile-time stand-in for the UIKit-only hook (same signature), so that
    /// the snippets type-check without UIKit. Never called.
    @discardableResult
    nonisolated func observeApplicationLifecycle() -> Task<Void, Never> { Task {} }
}
#endif

enum DocSnippets {
    static func open(appSupport: URL) throws -> EidApp {
        // snippet:start open
        let eid = try EidApp(
            configuration: AppConfiguration(
                databaseURL: appSupport.appendingPathComponent("eid.sqlite"),
                serverURL: URL(string: "https://eid.example:8443")!,
                serverSPKIPin: "sha256/…",
                language: .danish),     // kdfIterations: nil (calibrated on the device)
            keyStore: SecureEnclaveKeyStore())
        // snippet:end
        return eid
    }

    static func foreground(eid: EidApp) -> ForegroundPuller {
        // snippet:start foreground
        let puller = ForegroundPuller(eid: eid, interval: .seconds(15))
        puller.observeApplicationLifecycle()   // UIKit's foreground/background notifications feed the puller
        // snippet:end
        return puller
    }

    static func iosReadme(dbURL: URL, serverURL: URL, pin: String, request: RequestView, enteredPIN: String)
        async throws -> Receipt
    {
        // snippet:start ios-readme
        let eid = try EidApp(
            configuration: .init(databaseURL: dbURL, serverURL: serverURL, serverSPKIPin: pin),
            keyStore: SecureEnclaveKeyStore())
        let puller = ForegroundPuller(eid: eid, interval: .seconds(30))
        puller.observeApplicationLifecycle()
        // SwiftUI: @State var model = RequestListModel(eid: eid)
        let token = try await eid.unlock(request, pin: enteredPIN)
        let receipt = try await eid.approve(token, swipeConfirmed: true)
        // snippet:end
        _ = puller
        return receipt
    }
}

import Eid
import Foundation
import XCTest

/// Set-up shared by the end-to-end tests: a real `eid-server` per test, a
/// service provider, an identity, and a phone folder.
class ServerTestCase: XCTestCase {
    static let pin = "483951"
    static let providerName = "Swift Test Bank"

    var server: TestServer!
    var userID = ""
    var identity = ""
    var phoneDir: URL!

    /// Requests live this long on the test server (the expiry test shortens it).
    var requestLifetime: Int { 60 }
    /// A new device's waiting period on the test server, in seconds.
    var newDeviceWait: Int { 3600 }

    override func setUpWithError() throws {
        server = try TestServer(requestLifetime: requestLifetime, newDeviceWait: newDeviceWait)
        try server.registerProvider(name: Self.providerName)
        userID = "swift-\(Int.random(in: 100_000...999_999))a"
        identity = try server.createIdentity(userID: userID)
        phoneDir = server.dir.appendingPathComponent("phone")
        try FileManager.default.createDirectory(at: phoneDir, withIntermediateDirectories: true)
    }

    override func tearDown() {
        server?.stop()
        server = nil
    }

    /// A phone. `minReadMs` is 0 in tests (they approve right after a
    /// refresh); `nil` gives the core's default minimum read time.
    func makeAuthenticator(
        _ keyStore: SoftwareKeyStore, database: String = "eid.db", minReadMs: UInt64? = 0
    ) throws -> EidApp {
        let config = AppConfiguration(
            databaseURL: phoneDir.appendingPathComponent(database),
            serverURL: URL(string: server.url)!,
            serverSPKIPin: server.spkiPin,
            language: .english,
            kdfIterations: 1000,
            minReadMs: minReadMs,
            allowSoftwareKeyStore: softwareKeyStoreOptIn
        )
        return try EidApp(configuration: config, keyStore: keyStore)
    }

    /// An activated phone.
    func activatedAuthenticator(_ keyStore: SoftwareKeyStore = SoftwareKeyStore()) async throws -> (EidApp, AuthenticatorInfo) {
        let eid = try makeAuthenticator(keyStore)
        let code = try server.activationCode(identity: identity)
        let authenticator = try await eid.activate(userID: userID, activationCode: code, pin: Self.pin)
        return (eid, authenticator)
    }

    /// A service-provider login request, pulled onto the phone.
    func pulledRequest(_ eid: EidApp, text: String) async throws -> (String, RequestView) {
        let requestID = try server.requestLogin(userID: userID, text: text)
        let list = try await eid.refresh()
        let view = try XCTUnwrap(list.first { $0.requestId == requestID }, "pulled request missing")
        return (requestID, view)
    }

    func assertEidError(
        _ body: () async throws -> some Any, file: StaticString = #filePath, line: UInt = #line,
        _ check: (EidError) -> Bool
    ) async {
        do {
            _ = try await body()
            XCTFail("expected an EidError", file: file, line: line)
        } catch let error as EidError {
            XCTAssert(check(error), "unexpected \(error)", file: file, line: line)
        } catch {
            XCTFail("not an EidError: \(error)", file: file, line: line)
        }
    }

}

/// End to end against a real `eid-server`: activation, pulling a request,
/// approving it, a wrong PIN, lockout, and keystore failures.
final class EidAppTests: ServerTestCase {
    // MARK: Activation

    func testActivateAndReopen() async throws {
        let keyStore = SoftwareKeyStore()
        let eid = try makeAuthenticator(keyStore)
        // A wrong activation code is refused by the server, with its code.
        await assertEidError({
            try await eid.activate(userID: self.userID, activationCode: "AAAA-BBBB-CCCC", pin: Self.pin)
        }) { error in
            if case .Rejected(let code) = error { return code == .invalidActivationCode }
            return false
        }
        // A weak PIN is refused before anything is sent.
        await assertEidError({
            try await eid.activate(
                userID: self.userID, activationCode: try self.server.activationCode(identity: self.identity),
                pin: "123456")
        }) { error in
            if case .PinRefused(let kind, _) = error { return kind == .sequence }
            return false
        }
        let code = try server.activationCode(identity: identity)
        let authenticator = try await eid.activate(userID: userID, activationCode: code, pin: Self.pin)
        XCTAssertEqual(authenticator.userId, userID)
        XCTAssertEqual(authenticator.identityId, identity)
        XCTAssertEqual(authenticator.state, .active)
        XCTAssertFalse(keyStore.aliases.isEmpty, "activation made no key")
        let authenticators = try await eid.authenticators()
        XCTAssertEqual(authenticators.map(\.authenticatorId), [authenticator.authenticatorId])
        let pending = try await eid.pendingActivation()
        XCTAssertNil(pending)

        // Open the same database again (the app restarting): the authenticator is there.
        let reopened = try makeAuthenticator(keyStore)
        let reopenedAuthenticators = try await reopened.authenticators()
        XCTAssertEqual(reopenedAuthenticators, authenticators)
        let reopenedList = try await reopened.refresh()
        XCTAssertEqual(reopenedList, [])
    }

    func testAMalformedIdIsRefusedAsInvalidIdNamingItsKind() async throws {
        // Ids come from the records the library returns; only the raw FFI
        // object takes one typed by hand.
        let eid = try makeAuthenticator(SoftwareKeyStore())
        await assertEidError({
            try eid.core.requestsFor(authenticatorId: "not-an-id", language: .english)
        }) { $0 == .InvalidId(what: .authenticator) }
    }

    // MARK: Pull and approve

    func testRefreshShowsRequestAndStreamEmitsIt() async throws {
        let (eid, authenticator) = try await activatedAuthenticator()
        let stream = await eid.requestUpdates()
        var iterator = stream.makeAsyncIterator()
        let initial = await iterator.next()
        XCTAssertEqual(initial, [])

        let text = "Log in to Swift Test Bank online banking"
        let (requestID, view) = try await pulledRequest(eid, text: text)
        XCTAssertEqual(view.authenticatorId, authenticator.authenticatorId)
        XCTAssertEqual(view.userId, userID)
        XCTAssertEqual(view.kind, .login)
        XCTAssertEqual(view.providerName, Self.providerName)
        XCTAssertEqual(view.referenceText, text)
        XCTAssertEqual(view.language, .english)
        XCTAssertEqual(view.actions, [.approve, .deny, .reportFraud])
        XCTAssertEqual(view.warnings.first?.kind, .onlyApproveWhatYouStarted)
        XCTAssertFalse(view.warnings.first?.text.isEmpty ?? true)
        XCTAssertGreaterThan(view.timeLeftMs, 0)
        XCTAssertLessThanOrEqual(view.timeLeftMs, UInt64(requestLifetime) * 1000)

        let emitted = await iterator.next()
        XCTAssertEqual(emitted?.map(\.requestId), [requestID])
        let current = await eid.requests
        XCTAssertEqual(current.map(\.requestId), [requestID])
    }

    func testApprovalRightAfterDisplayIsTooFastThenAccepted() async throws {
        let eid = try makeAuthenticator(SoftwareKeyStore(), minReadMs: nil)
        let code = try server.activationCode(identity: identity)
        _ = try await eid.activate(userID: userID, activationCode: code, pin: Self.pin)
        let text = "Read before you approve"
        let (requestID, view) = try await pulledRequest(eid, text: text)
        let token = try await eid.unlock(view, pin: Self.pin)
        var waitMs: UInt64 = 0
        do {
            _ = try await eid.approve(token, swipeConfirmed: true)
            XCTFail("an approval right after display must be refused")
        } catch EidError.TooFast(let wait) {
            waitMs = wait
        }
        XCTAssertTrue((1...1500).contains(waitMs), "wait \(waitMs)")
        XCTAssertEqual(try server.status(request: requestID, text: text).status, "pending")
        try await Task.sleep(for: .milliseconds(Int(waitMs) + 50))
        // The same unlock: the refusal did not use it up.
        let receipt = try await eid.approve(token, swipeConfirmed: true)
        XCTAssertEqual(receipt.outcome, .approved)
        XCTAssertEqual(try server.status(request: requestID, text: text).status, "approved")
    }

    func testApprove() async throws {
        let (eid, authenticator) = try await activatedAuthenticator()
        let text = "Approve login to Swift Test Bank"
        let (requestID, view) = try await pulledRequest(eid, text: text)

        let token = try await eid.unlock(view, pin: Self.pin)
        XCTAssertEqual(token.requestId(), requestID)
        XCTAssertEqual(token.authenticatorId(), authenticator.authenticatorId)
        // Approving needs the completed swipe.
        await assertEidError({ try await eid.approve(token, swipeConfirmed: false) }) { $0 == .SwipeRequired }

        let receipt = try await eid.approve(token, swipeConfirmed: true)
        XCTAssertEqual(receipt.outcome, .approved)
        XCTAssertEqual(receipt.requestId, requestID)
        XCTAssertEqual(receipt.authenticatorId, authenticator.authenticatorId)
        XCTAssertEqual(receipt.referenceTextSha256.count, 64)

        // The service provider sees the approval, with a receipt that verifies.
        let status = try server.status(request: requestID, text: text)
        XCTAssertEqual(status.status, "approved")
        XCTAssertNotNil(status.receipt)
        // The phone no longer lists it, locally or after a pull.
        let local = await eid.requests
        XCTAssertFalse(local.contains { $0.requestId == requestID })
        let afterApprove = try await eid.refresh()
        XCTAssertEqual(afterApprove, [])
    }

    func testDenyAndReportFraud() async throws {
        let (eid, _) = try await activatedAuthenticator()
        let (denied, deniedView) = try await pulledRequest(eid, text: "Log in to the tax portal")
        let denyOutcome = try await eid.deny(deniedView).outcome
        XCTAssertEqual(denyOutcome, .denied)
        XCTAssertEqual(try server.status(request: denied).status, "denied")
        let (fraud, fraudView) = try await pulledRequest(eid, text: "Log in to a bank you never used")
        let fraudOutcome = try await eid.reportFraud(fraudView).outcome
        XCTAssertEqual(fraudOutcome, .fraudReported)
        XCTAssertEqual(try server.status(request: fraud).status, "fraud_reported")
    }

    func testBlockFromTheAppNeedsNoPinAndCancelsPending() async throws {
        let (eid, _) = try await activatedAuthenticator()
        let (pending, _) = try await pulledRequest(eid, text: "Log in to a bank you never used")
        let authenticators = try await eid.authenticators()
        let authenticator = try XCTUnwrap(authenticators.first)
        try await eid.blockIdentity(authenticator)
        let state = try await eid.authenticators().first?.state
        XCTAssertEqual(state, .blocked)
        let shown = try await eid.reload()
        XCTAssertTrue(shown.isEmpty)
        XCTAssertEqual(try server.status(request: pending).status, "cancelled")
    }

    // MARK: PIN

    func testWrongPin() async throws {
        let (eid, _) = try await activatedAuthenticator()
        let (requestID, view) = try await pulledRequest(eid, text: "Log in with a typo")
        await assertEidError({ try await eid.unlock(view, pin: "864209") }) {
            if case .WrongPin(let attemptsLeft, _) = $0 { return attemptsLeft == 9 }
            return false
        }
        // Nothing was decided: still pending on the server and on the phone.
        XCTAssertEqual(try server.status(request: requestID).status, "pending")
        let stillListed = try await eid.refresh().map(\.requestId)
        XCTAssertEqual(stillListed, [requestID])
        // The right PIN still works.
        let token = try await eid.unlock(view, pin: Self.pin)
        let outcome = try await eid.approve(token, swipeConfirmed: true).outcome
        XCTAssertEqual(outcome, .approved)
    }

    func testLockoutAfterThreeWrongPins() async throws {
        let (eid, _) = try await activatedAuthenticator()
        let (requestID, view) = try await pulledRequest(eid, text: "Log in, locked out")
        var attempts: [UInt32] = []
        var lastRetry: UInt64 = 0
        for wrong in ["864209", "975310", "208642"] {
            do {
                _ = try await eid.unlock(view, pin: wrong)
                XCTFail("wrong PIN accepted")
            } catch EidError.WrongPin(let attemptsLeft, let retryAfterMs) {
                attempts.append(attemptsLeft)
                lastRetry = retryAfterMs
            }
        }
        XCTAssertEqual(attempts, [9, 8, 7])
        XCTAssertGreaterThan(lastRetry, 0, "the third wrong PIN starts a wait")
        // Locked: even the right PIN is refused.
        await assertEidError({ try await eid.unlock(view, pin: Self.pin) }) {
            if case .LockedOut(let retryAfterMs) = $0 { return retryAfterMs > 0 }
            return false
        }
        XCTAssertEqual(try server.status(request: requestID).status, "pending")
    }

    // MARK: Keystore failures

    func testKeyStoreErrorsSurfaceAsEidError() async throws {
        let keyStore = SoftwareKeyStore()
        let (eid, _) = try await activatedAuthenticator(keyStore)
        let (requestID, view) = try await pulledRequest(eid, text: "Log in, keystore broken")
        let token = try await eid.unlock(view, pin: Self.pin)

        // A declared KeyStoreError.
        keyStore.setSignFailure(.declared)
        await assertEidError({ try await eid.approve(token, swipeConfirmed: true) }) {
            if case .KeyStore(let message) = $0 { return message.contains("told to fail") }
            return false
        }
        // An error the bindings do not know: still an EidError, not a crash.
        keyStore.setSignFailure(.undeclared)
        await assertEidError({ try await eid.deny(view) }) {
            if case .KeyStore(let message) = $0 { return message.contains("UndeclaredError") }
            return false
        }
        // Pulls are signed too: a failing keystore fails the pull, cleanly.
        await assertEidError({ try await eid.refresh() }) {
            if case .KeyStore = $0 { return true }
            return false
        }
        XCTAssertEqual(try server.status(request: requestID).status, "pending")

        // Working again: the request can still be decided.
        keyStore.setSignFailure(.none)
        let again = try await eid.unlock(view, pin: Self.pin)
        let outcome = try await eid.approve(again, swipeConfirmed: true).outcome
        XCTAssertEqual(outcome, .approved)
    }

    // MARK: Foreground pulls

    func testForegroundPullerPullsOnForegroundAndPeriodically() async throws {
        let (eid, _) = try await activatedAuthenticator()
        let puller = ForegroundPuller(eid: eid, interval: .milliseconds(300))
        let events = await puller.events()
        var iterator = events.makeAsyncIterator()

        let requestID = try server.requestLogin(userID: userID, text: "Log in, pulled on foreground")
        await puller.appDidEnterForeground()
        guard case .pulled(let count)? = await iterator.next() else { return XCTFail("no pull") }
        XCTAssertEqual(count, 1)
        let listed = await eid.requests.map(\.requestId)
        XCTAssertEqual(listed, [requestID])

        // While in the foreground it pulls again by itself.
        _ = try server.requestLogin(userID: userID, text: "Log in, pulled by the timer")
        guard case .pulled(let second)? = await iterator.next() else { return XCTFail("no periodic pull") }
        XCTAssertEqual(second, 2)
        await puller.appDidEnterBackground()
        let inForeground = await puller.isInForeground
        XCTAssertFalse(inForeground)
    }
}

/// Expiry needs a server whose requests live only a few seconds.
final class ExpiryTests: ServerTestCase {
    override var requestLifetime: Int { 3 }

    func testExpiredRequestCannotBeApproved() async throws {
        let (eid, _) = try await activatedAuthenticator()
        let (requestID, view) = try await pulledRequest(eid, text: "Log in, too late")
        XCTAssertLessThanOrEqual(view.timeLeftMs, 3000)
        try await Task.sleep(for: .seconds(4))

        // The local countdown has run out: the app stops listing it.
        let stillListedLocally = try await eid.reload().contains { $0.requestId == requestID }
        XCTAssertFalse(stillListedLocally)
        await assertEidError({ try await eid.unlock(view, pin: Self.pin) }) {
            $0 == .Expired || $0 == .UnknownRequest
        }
        let afterExpiry = try await eid.refresh()
        XCTAssertEqual(afterExpiry, [])
        XCTAssertEqual(try server.status(request: requestID).status, "expired")
    }
}

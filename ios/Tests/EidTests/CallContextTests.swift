import Eid
import Foundation
import XCTest

/// The call context in the Swift shell (docs/integration.md, "Calls and
/// screen sharing"): the platform rules, and a fake provider against the
/// host library and a real eid-server. CallKit and UIKit are not on Linux;
/// `PlatformContext` is compiled only where they are, and its rules are
/// tested here through `CallSignalRules`.
final class CallContextTests: ServerTestCase {
    let onCall = CallSignals(call: .on, screenShared: .off, remoteControl: .unknown)

    func testCallKitAndScreenCaptureReadingsBecomeSignalsAndAMissingReadingIsUnknown() {
        XCTAssertEqual(CallSignalRules.call(activeCalls: 1), .on)
        XCTAssertEqual(CallSignalRules.call(activeCalls: 0), .off)
        XCTAssertEqual(CallSignalRules.call(activeCalls: nil), .unknown)
        XCTAssertEqual(CallSignalRules.screenShared(captured: true), .on)
        XCTAssertEqual(CallSignalRules.screenShared(captured: false), .off)
        XCTAssertEqual(CallSignalRules.screenShared(captured: nil), .unknown)
        XCTAssertEqual(CallSignalRules.signals(activeCalls: 0, captured: false).remoteControl, .unknown)
    }

    func testOnACallTheScreenLeadsWithTheWarningAndTheSwipeWaitsForTheConfirmation() async throws {
        let (eid, _) = try await activatedAuthenticator()
        try await eid.setContextProvider(FixedContextProvider(onCall))
        let (requestID, view) = try await pulledRequest(eid, text: "Log in to Swift Call Bank")
        XCTAssertEqual(view.warnings.first?.kind, .onCall)
        XCTAssertTrue(view.warnings.first?.text.hasPrefix("You are on a call.") ?? false)
        XCTAssertEqual(view.callWarning?.warning, view.warnings.first)
        XCTAssertEqual(view.callSignals, onCall)
        XCTAssertTrue(view.needsStartedMyself)

        let token = try await eid.unlock(view, pin: Self.pin)
        await assertEidError({ try await eid.approve(token, swipeConfirmed: true) }) {
            if case .StartedMyselfRequired = $0 { return true }
            return false
        }
        XCTAssertEqual(try server.status(request: requestID).status, "pending")
        try await eid.confirmStartedMyself(view)
        let confirmed = await eid.requests.first { $0.requestId == requestID }
        XCTAssertEqual(confirmed?.needsStartedMyself, false)
        _ = try await eid.approve(token, swipeConfirmed: true)
        let status = try server.eid(["rp", "status", "--request", requestID])
        XCTAssertEqual(status["status"] as? String, "approved")
        XCTAssertEqual(status["call_verdict"] as? String, "flagged")
    }

    func testASelfServiceLoginApprovedOnACallIsStoppedAndThePersonTold() async throws {
        let (eid, authenticator) = try await activatedAuthenticator()
        try await eid.setContextProvider(FixedContextProvider(onCall))
        let started = try server.eid([
            "self-service", "change-contact", "--user-id", userID, "--phone", "+4599887766",
        ])
        let list = try await eid.refresh()
        let view = try XCTUnwrap(list.first { $0.kind == .selfService })
        try await eid.confirmStartedMyself(view)
        let code = try XCTUnwrap(started["binding_code"] as? String)
        let token = try await eid.unlock(view, pin: Self.pin)
        await assertEidError({ try await eid.approve(token, swipeConfirmed: true, bindingCode: code) }) {
            if case .Rejected(let code) = $0 { return code == .stoppedOnCall }
            return false
        }
        let after = try await eid.refresh()
        XCTAssertTrue(after.isEmpty)
        let kinds = try await eid.events(for: authenticator).map(\.kind)
        XCTAssertTrue(kinds.contains(.approvalStoppedOnCall))
    }

    func testWithoutASignalOnThereIsNoWarningAndNoGate() async throws {
        let (eid, _) = try await activatedAuthenticator()
        let (requestID, view) = try await pulledRequest(eid, text: "Log in to Swift Call Bank")
        XCTAssertNil(view.callWarning)
        XCTAssertFalse(view.needsStartedMyself)
        XCTAssertEqual(view.callSignals, FixedContextProvider.unknown)
        let token = try await eid.unlock(view, pin: Self.pin)
        _ = try await eid.approve(token, swipeConfirmed: true)
        let status = try server.eid(["rp", "status", "--request", requestID])
        XCTAssertEqual(status["call_verdict"] as? String, "clear")
    }

    func testAProviderThatThrowsReportsEverySignalUnknownAndThePersonCanStillDecide() async throws {
        let (eid, _) = try await activatedAuthenticator()
        try await eid.setContextProvider(ThrowingContextProvider())
        let (requestID, view) = try await pulledRequest(eid, text: "Log in to Swift Call Bank")
        XCTAssertEqual(view.callSignals, FixedContextProvider.unknown)
        XCTAssertNil(view.callWarning)
        XCTAssertFalse(view.needsStartedMyself)
        _ = try await eid.deny(view)
        XCTAssertEqual(try server.status(request: requestID).status, "denied")
    }
}

/// A provider whose platform reading fails.
private final class ThrowingContextProvider: ContextProvider, @unchecked Sendable {
    struct Unreadable: Error {}

    func signals() throws -> CallSignals {
        throw Unreadable()
    }
}

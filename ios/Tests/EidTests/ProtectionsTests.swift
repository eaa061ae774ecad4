import Eid
import Foundation
import XCTest

/// The protections of docs/architecture.md §3 through the Swift package against a real server:
/// the security feed, "notify me on every use", and a new device added from an
/// existing phone with its waiting period (2 s on this server) and cancel.
final class ProtectionsTests: ServerTestCase {
    override var newDeviceWait: Int { 2 }

    /// A second phone for the same person: its own database and keystore.
    func newPhone(_ name: String) throws -> EidApp {
        try makeAuthenticator(SoftwareKeyStore(), database: "\(name).db")
    }

    func testFeedShowsBlocksAndEveryUseOnceTurnedOn() async throws {
        let (eid, authenticator) = try await activatedAuthenticator()
        try server.setBlocked(identity: identity, true)
        try server.setBlocked(identity: identity, false)
        _ = try await eid.refresh()
        let kinds = try await eid.events(for: authenticator).map(\.kind)
        XCTAssertEqual(kinds, [.identityUnblocked, .identityBlocked, .deviceActivated], "newest first")

        let notifying = try await eid.notifyEveryUse(for: authenticator)
        XCTAssertFalse(notifying)
        try await eid.turnOnNotifyEveryUse(for: authenticator)
        let (_, view) = try await pulledRequest(eid, text: "Log in to netbank")
        let token = try await eid.unlock(view, pin: Self.pin)
        _ = try await eid.approve(token, swipeConfirmed: true)
        _ = try await eid.refresh()
        let newest = try await eid.events(for: authenticator).first
        XCTAssertEqual(newest?.kind, .used)
        XCTAssertEqual(newest?.critical, false)
        XCTAssertTrue(newest?.body.contains(Self.providerName) ?? false)
        let nowNotifying = try await eid.notifyEveryUse(for: authenticator)
        XCTAssertTrue(nowNotifying)

        // Off needs the PIN, and the feed says so.
        try await eid.turnOffNotifyEveryUse(for: authenticator, pin: Self.pin)
        _ = try await eid.refresh()
        let stillNotifying = try await eid.notifyEveryUse(for: authenticator)
        XCTAssertFalse(stillNotifying)
        let off = try await eid.events(for: authenticator).first
        XCTAssertEqual(off?.kind, .notifyEveryUseTurnedOff)
        XCTAssertEqual(off?.critical, true)
    }

    func testHardwareListComesFromTheServerAndDeactivationNeedsSwipeAndPin() async throws {
        let (eid, authenticator) = try await activatedAuthenticator()
        let listed = try await eid.hardwareAuthenticators(for: authenticator)
        XCTAssertTrue(listed.isEmpty)
        let stranger = HardwareAuthenticatorInfo(
            id: String(repeating: "0", count: 32), kind: .chip, maskedSerial: "…0000", state: .active,
            addedAtMs: 0, lastUsedAtMs: nil, activeFromMs: nil)
        await assertEidError({
            _ = try await eid.deactivateHardware(stranger, for: authenticator, pin: Self.pin, swipeConfirmed: false)
        }) { $0 == .SwipeRequired }
        await assertEidError({
            _ = try await eid.deactivateHardware(stranger, for: authenticator, pin: "864209", swipeConfirmed: true)
        }) {
            if case .WrongPin = $0 { return true }
            return false
        }
        await assertEidError({
            _ = try await eid.deactivateHardware(stranger, for: authenticator, pin: Self.pin, swipeConfirmed: true)
        }) {
            if case .Rejected(let code) = $0 { return code == .unknownHardware }
            return false
        }
    }

    func testCodeDeviceActivationShowsTheLoudestWarningAndIsAddedOnApproval() async throws {
        let (eid, authenticator) = try await activatedAuthenticator()
        let repo = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        // The fuzz corpus's good batch: two devices under the key 0x42 x 16.
        let batch = repo.appendingPathComponent("fuzz/corpus/pskc/valid-two-devices.xml").path
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let key = dir.appendingPathComponent("psk")
        try String(repeating: "42", count: 16).write(to: key, atomically: true, encoding: .utf8)
        let access = dir.appendingPathComponent("access")
        try "green-harbour-77".write(to: access, atomically: true, encoding: .utf8)
        try server.eid(["admin", "import-tokens", "--file", batch, "--pre-shared-key-file", key.path])
        let requested = try server.eid([
            "token", "request-activation", "--user-id", userID, "--serial", "CD0001",
            "--pskc", batch, "--pre-shared-key-file", key.path, "--access-code-file", access.path,
        ])
        let requestID = try XCTUnwrap(requested["request_id"] as? String)
        let list = try await eid.refresh()
        let view = try XCTUnwrap(list.first { $0.requestId == requestID })
        XCTAssertEqual(view.kind, .codeDevice)
        XCTAssertEqual(view.warnings.first?.kind, .codeDevice, "the loudest warning first")
        let token = try await eid.unlock(view, pin: Self.pin)
        _ = try await eid.approve(token, swipeConfirmed: true)
        _ = try await eid.refresh()
        let added = try await eid.events(for: authenticator).first { $0.kind == .codeDeviceAdded }
        XCTAssertEqual(added?.critical, true)
    }

    func testNewPhoneIsAddedFromTheExistingOneAfterTheWait() async throws {
        let (old, authenticator) = try await activatedAuthenticator()
        let new = try newPhone("new")
        let enrolment = try await new.startDeviceEnrolment(userID: userID, pin: Self.pin)
        XCTAssertEqual(enrolment.code.count, 8)

        let list = try await old.refresh()
        let view = try XCTUnwrap(list.first { $0.kind == .newDevice })
        XCTAssertTrue(view.warnings.contains { $0.kind == .newDevice })
        let token = try await old.unlock(view, pin: Self.pin)
        // Scanning the new phone's QR code hands its payload over as is.
        _ = try await old.approve(token, swipeConfirmed: true, bindingCode: enrolment.qrPayload)

        guard case .waiting(_, let remainingMs) = try await new.pollDeviceEnrolment() else {
            return XCTFail("expected the waiting period")
        }
        _ = try await old.refresh()
        let devices = try await old.pendingDevices(for: authenticator)
        XCTAssertEqual(devices.map(\.state), [.waiting])

        try await Task.sleep(nanoseconds: (remainingMs + 300) * 1_000_000)
        guard case .activated(let activated) = try await new.pollDeviceEnrolment() else {
            return XCTFail("expected the new phone to be activated")
        }
        let authenticators = try await new.authenticators()
        XCTAssertEqual(authenticators.map(\.authenticatorId), [activated.authenticatorId])
        XCTAssertEqual(authenticators.first?.userId, userID)
    }

    func testExistingPhoneCancelsAScammersPhoneDuringTheWait() async throws {
        let (old, authenticator) = try await activatedAuthenticator()
        let scammer = try newPhone("scammer")
        let enrolment = try await scammer.startDeviceEnrolment(userID: userID, pin: Self.pin)
        let list = try await old.refresh()
        let view = try XCTUnwrap(list.first { $0.kind == .newDevice })
        let token = try await old.unlock(view, pin: Self.pin)
        _ = try await old.approve(token, swipeConfirmed: true, bindingCode: enrolment.code)

        _ = try await old.refresh()
        let pending = try await old.pendingDevices(for: authenticator)
        let device = try XCTUnwrap(pending.first)
        try await old.cancelDeviceEnrolment(device, for: authenticator)
        _ = try await old.refresh()
        let left = try await old.pendingDevices(for: authenticator)
        XCTAssertTrue(left.isEmpty)
        let kinds = try await old.events(for: authenticator).map(\.kind)
        XCTAssertTrue(kinds.contains(.newDeviceCancelled))

        try await Task.sleep(nanoseconds: 2_500_000_000)
        await assertEidError({ try await scammer.pollDeviceEnrolment() }) {
            if case .EnrolmentRefused = $0 { return true }
            return false
        }
        let authenticators = try await scammer.authenticators()
        XCTAssertTrue(authenticators.isEmpty)
    }

    func testPhoneChangeIsShownWithItsEarliestTimeAndCancelledFromTheApp() async throws {
        let (eid, authenticator) = try await activatedAuthenticator()
        let started = try server.eid([
            "self-service", "change-contact", "--user-id", userID, "--phone", "+4587654321",
        ])
        let changeID = try XCTUnwrap(started["change_id"] as? String)
        let list = try await eid.refresh()
        let view = try XCTUnwrap(list.first { $0.kind == .selfService })
        XCTAssertTrue(view.warnings.contains { $0.kind == .selfService })
        XCTAssertTrue(view.warnings.contains { $0.kind == .bindingCodeRequired })
        XCTAssertTrue(view.referenceText?.contains("+45••••••21") ?? false)
        // The login is bound to the portal session: the code it showed.
        let code = try XCTUnwrap(started["binding_code"] as? String)
        let token = try await eid.unlock(view, pin: Self.pin)
        _ = try await eid.approve(token, swipeConfirmed: true, bindingCode: code)

        _ = try await eid.refresh()
        let changes = try await eid.pendingContactChanges(for: authenticator)
        let change = try XCTUnwrap(changes.first)
        XCTAssertEqual(changes.count, 1)
        XCTAssertEqual(change.changeId, changeID)
        XCTAssertEqual(change.state, .waitingSecondLogin)
        XCTAssertEqual(change.newValueMasked, "+45••••••21")
        let earliest = try XCTUnwrap(change.earliestCompletionAtMs)
        XCTAssertGreaterThanOrEqual(earliest, change.createdAtMs + 3_600_000)

        try await eid.cancelContactChange(change, for: authenticator)
        _ = try await eid.refresh()
        let left = try await eid.pendingContactChanges(for: authenticator)
        XCTAssertTrue(left.isEmpty)
        let kinds = try await eid.events(for: authenticator).map(\.kind)
        XCTAssertTrue(kinds.contains(.contactChangeCancelled))
        XCTAssertThrowsError(try server.eid(["self-service", "confirm", "--change", changeID, "--user-id", userID]))
        let alarms = try await eid.journalAlarms(for: authenticator)
        XCTAssertTrue(alarms.isEmpty, "every decision here was this phone's own")
    }
}

import Eid
import Foundation
import XCTest

/// Two people on one phone: the first screen shows each with a count and
/// nothing about what waits; details come only for the person chosen.
final class HouseholdTests: ServerTestCase {
    func testHouseholdShowsCountsAndDetailsOnlyAfterChoosing() async throws {
        let (eid, _) = try await activatedAuthenticator()
        let partner = "swift-\(Int.random(in: 100_000...999_999))b"
        let partnerIdentity = try server.createIdentity(userID: partner)
        _ = try await eid.activate(
            userID: partner, activationCode: try server.activationCode(identity: partnerIdentity),
            pin: Self.pin)

        let secret = "Transfer 25,000 DKK to account 1234-5678901"
        _ = try server.requestLogin(userID: userID, text: secret)
        _ = try server.requestLogin(userID: userID, text: "Log in to netbank")
        _ = try server.requestLogin(userID: partner, text: "Log in to netbank")
        _ = try await eid.refresh()

        let people = try await eid.household()
        XCTAssertEqual(people.map(\.userId), [userID, partner])
        XCTAssertEqual(people.map(\.pendingRequests), [2, 1])
        XCTAssertEqual(people[0].headline, "2 requests waiting")
        XCTAssertFalse("\(people)".contains("25,000"), "the first screen says nothing about requests")

        let mine = try await eid.requests(for: people[0])
        XCTAssertEqual(mine.count, 2)
        XCTAssertTrue(mine.allSatisfy { $0.authenticatorId == people[0].authenticatorId })
        XCTAssertTrue(mine.contains { $0.referenceText == secret })
        let theirs = try await eid.requests(for: people[1])
        XCTAssertEqual(theirs.count, 1)
    }
}

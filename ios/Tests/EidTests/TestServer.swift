import Foundation
import XCTest

/// Where the host-built binaries are: `EID_BIN_DIR`, else `<repo>/target/debug`.
let binDir: URL = {
    if let dir = ProcessInfo.processInfo.environment["EID_BIN_DIR"], !dir.isEmpty {
        return URL(fileURLWithPath: dir)
    }
    return URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("target/debug")
}()

struct TestFailure: Error, CustomStringConvertible {
    let description: String
}

/// A real `eid-server` on 127.0.0.1 with a temporary data folder, driven with
/// the `eid` CLI (`--json`) for the admin and service-provider steps.
final class TestServer: @unchecked Sendable {
    let dir: URL
    let url: String
    let spkiPin: String
    let adminTokenFile: String
    private let process: Process
    private(set) var apiKey: String?

    /// Starts a server whose requests live `requestLifetime` seconds, whose
    /// new devices wait `newDeviceWait` seconds and whose self-service changes
    /// need `selfServiceGap` seconds between their two logins.
    init(requestLifetime: Int, newDeviceWait: Int = 3600, selfServiceGap: Int = 3600) throws {
        dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("eid-swift-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let out = dir.appendingPathComponent("server.out")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        let log = dir.appendingPathComponent("server.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)

        process = Process()
        process.executableURL = binDir.appendingPathComponent("eid-server")
        var env = ProcessInfo.processInfo.environment
        env["EID_SERVER_DATA_DIR"] = dir.appendingPathComponent("data").path
        env["EID_SERVER_LISTEN"] = "127.0.0.1:0"
        env["EID_SERVER_REQUEST_LIFETIME_SECS"] = String(requestLifetime)
        env["EID_SERVER_NEW_DEVICE_WAIT_SECS"] = String(newDeviceWait)
        env["EID_SERVER_SELF_SERVICE_GAP_SECS"] = String(selfServiceGap)
        env["EID_LOG"] = "warn"
        process.environment = env
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: log)
        try process.run()
        // The test script kills whatever a crashed test left behind.
        if let pidDir = ProcessInfo.processInfo.environment["EID_TEST_PID_DIR"] {
            try? String(process.processIdentifier).write(
                toFile: pidDir + "/\(process.processIdentifier).pid", atomically: true, encoding: .utf8)
        }

        // Wait for the banner: URL, TLS pin, admin token file.
        var text = ""
        let deadline = Date().addingTimeInterval(60)
        while !text.contains("admin token file:") {
            guard process.isRunning, Date() < deadline else {
                process.terminate()
                let logText = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
                throw TestFailure(description: "eid-server did not start: \(text)\n\(logText)")
            }
            Thread.sleep(forTimeInterval: 0.05)
            text = (try? String(contentsOf: out, encoding: .utf8)) ?? ""
        }
        func field(_ label: String) -> String {
            let line = text.split(separator: "\n").first { $0.contains(label) } ?? ""
            let rest = line.components(separatedBy: label).last ?? ""
            return rest.trimmingCharacters(in: .whitespaces)
        }
        url = field("listening on")
        spkiPin = field("TLS SPKI pin:")
        adminTokenFile = field("admin token file:").components(separatedBy: " (").first ?? ""
    }

    /// Stops the server and removes its folder.
    func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        if let pidDir = ProcessInfo.processInfo.environment["EID_TEST_PID_DIR"] {
            try? FileManager.default.removeItem(atPath: pidDir + "/\(process.processIdentifier).pid")
        }
        try? FileManager.default.removeItem(at: dir)
    }

    /// Runs `eid --json <args>` and returns its JSON object; throws on failure.
    @discardableResult
    func eid(_ args: [String]) throws -> [String: Any] {
        let cli = Process()
        cli.executableURL = binDir.appendingPathComponent("eid")
        cli.arguments = ["--json"] + args
        var env = ProcessInfo.processInfo.environment
        env["EID_SERVER"] = url
        env["EID_SPKI_PIN"] = spkiPin
        env["EID_ADMIN_TOKEN_FILE"] = adminTokenFile
        if let apiKey { env["EID_API_KEY"] = apiKey }
        cli.environment = env
        let pipe = Pipe()
        cli.standardOutput = pipe
        try cli.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        cli.waitUntilExit()
        let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
        guard cli.terminationStatus == 0, let object else {
            throw TestFailure(description: "eid \(args.joined(separator: " ")) failed: "
                + (String(data: data, encoding: .utf8) ?? ""))
        }
        return object
    }

    /// Registers a service provider and keeps its API key for `rp` commands.
    func registerProvider(name: String) throws {
        let sp = try eid(["admin", "register-provider", "--name", name])
        apiKey = sp["api_key"] as? String
    }

    /// Creates an identity; returns its id.
    func createIdentity(userID: String) throws -> String {
        let created = try eid(["admin", "create-identity", "--user-id", userID])
        guard let id = created["identity_id"] as? String else { throw TestFailure(description: "no identity_id") }
        return id
    }

    /// Issues an activation code for an identity.
    func activationCode(identity: String) throws -> String {
        let issued = try eid(["admin", "activation-code", "--identity", identity])
        guard let code = issued["activation_code"] as? String else { throw TestFailure(description: "no code") }
        return code
    }

    /// Support blocks or unblocks an identity.
    func setBlocked(identity: String, _ blocked: Bool) throws {
        try eid(["admin", blocked ? "block" : "unblock", "--identity", identity, "--reason", "test: support case"])
    }

    /// A service provider asks `userID` to log in; returns the request id.
    func requestLogin(userID: String, text: String) throws -> String {
        let created = try eid(["rp", "request", "--user-id", userID, "--kind", "login", "--text", text])
        guard let id = created["request_id"] as? String else { throw TestFailure(description: "no request_id") }
        return id
    }

    /// The service provider's view of a request: its status string and whether a
    /// receipt verified against the server key.
    func status(request: String, text: String? = nil) throws -> (status: String, receipt: [String: Any]?) {
        var args = ["rp", "status", "--request", request]
        if let text { args += ["--text", text] }
        let status = try eid(args)
        return (status["status"] as? String ?? "", status["receipt"] as? [String: Any])
    }
}

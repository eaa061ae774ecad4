import Foundation
import XCTest

/// The documents an app developer reads first must match the code: every
/// ```swift block in them is a region of DocSnippets.swift (which this target
/// compiles), and the Swift column of the API table in docs/integration.md
/// names exactly the public members of `EidApp`.
final class DocsMatchCodeTests: XCTestCase {
    /// The repository root: this file is ios/Tests/EidTests/DocsMatchCodeTests.swift.
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static let documents = ["docs/integration.md", "ios/README.md", "README.md"]

    func read(_ path: String) throws -> String {
        try String(contentsOf: Self.root.appendingPathComponent(path), encoding: .utf8)
    }

    /// `// snippet:start NAME` ... `// snippet:end` regions, without their
    /// common indentation.
    func regions(in source: String) -> [String: [String]] {
        var found: [String: [String]] = [:]
        var name: String?
        var body: [String] = []
        for line in source.components(separatedBy: "\n") {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("// snippet:start ") {
                name = String(trimmed.dropFirst("// snippet:start ".count))
                body = []
            } else if trimmed == "// snippet:end", let current = name {
                let indent = body.filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
                    .map { $0.prefix(while: { $0 == " " }).count }.min() ?? 0
                found[current] = body.map { String($0.dropFirst(min(indent, $0.count))) }
                name = nil
            } else if name != nil {
                body.append(line)
            }
        }
        return found
    }

    /// Each ```swift block of a document with the snippet name in the
    /// `<!-- snippet: NAME -->` line right above it (nil when it has none).
    func swiftBlocks(in document: String) -> [(name: String?, lines: [String])] {
        var blocks: [(name: String?, lines: [String])] = []
        let lines = document.components(separatedBy: "\n")
        var i = 0
        while i < lines.count {
            if lines[i].trimmingCharacters(in: .whitespaces) == "```swift" {
                var name: String?
                if i > 0, let m = lines[i - 1].range(of: #"<!-- snippet: ([\w-]+) -->"#, options: .regularExpression) {
                    name = String(lines[i - 1][m].dropFirst("<!-- snippet: ".count).dropLast(" -->".count))
                }
                var body: [String] = []
                i += 1
                while i < lines.count, lines[i].trimmingCharacters(in: .whitespaces) != "```" {
                    body.append(lines[i])
                    i += 1
                }
                blocks.append((name, body))
            }
            i += 1
        }
        return blocks
    }

    func testEverySwiftBlockInTheDocumentsIsACompiledSnippet() throws {
        let snippets = regions(in: try read("ios/Tests/EidTests/DocSnippets.swift"))
        XCTAssertFalse(snippets.isEmpty, "no snippet regions found")
        var used = Set<String>()
        for path in Self.documents {
            for block in swiftBlocks(in: try read(path)) {
                guard let name = block.name else {
                    XCTFail("\(path): a ```swift block has no `<!-- snippet: NAME -->` line above it")
                    continue
                }
                guard let region = snippets[name] else {
                    XCTFail("\(path): snippet \(name) is not in DocSnippets.swift")
                    continue
                }
                used.insert(name)
                let trim = { (l: [String]) in l.map { $0.replacingOccurrences(of: #"\s+$"#, with: "", options: .regularExpression) } }
                XCTAssertEqual(trim(block.lines), trim(region), "\(path): snippet \(name) differs from DocSnippets.swift")
            }
        }
        XCTAssertEqual(used, Set(snippets.keys), "snippets in DocSnippets.swift that no document shows")
    }

    func testTheApiTableNamesEveryPublicMemberOfEidApp() throws {
        let source = try read("ios/Sources/Eid/EidApp.swift")
        let actor = try XCTUnwrap(source.range(of: "public actor EidApp"))
        let body = String(source[actor.upperBound...])
        var code = Set<String>()
        let member = try NSRegularExpression(
            pattern: #"public\s+(?:nonisolated\s+)?(?:private\(set\)\s+)?(?:let|var|func)\s+(\w+)|public\s+(init)\("#)
        for m in member.matches(in: body, range: NSRange(body.startIndex..., in: body)) {
            for group in 1...2 {
                if let r = Range(m.range(at: group), in: body) { code.insert(String(body[r])) }
            }
        }
        XCTAssertTrue(code.contains("approve"), "the member pattern found: \(code)")

        let documented = try apiTableColumn(1)
        XCTAssertEqual(documented, code, "docs/integration.md's API table (Swift column) and EidApp.swift differ")
    }

    /// The member names in one column (0 Kotlin, 1 Swift) of the table after
    /// `<!-- api-table: EidApp -->`: each backticked name up to its `(`.
    func apiTableColumn(_ column: Int) throws -> Set<String> {
        let doc = try read("docs/integration.md")
        let start = try XCTUnwrap(doc.range(of: "<!-- api-table: EidApp -->"), "no API table marker")
        let rows = doc[start.upperBound...].components(separatedBy: "\n")
            .drop(while: { !$0.hasPrefix("|") }).prefix(while: { $0.hasPrefix("|") }).dropFirst(2)
        XCTAssertGreaterThan(rows.count, 10)
        var names = Set<String>()
        let name = try NSRegularExpression(pattern: #"`([A-Za-z_]\w*)"#)
        for row in rows {
            let cells = row.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            let cell = cells[column + 1]
            for m in name.matches(in: cell, range: NSRange(cell.startIndex..., in: cell)) {
                names.insert(String(cell[Range(m.range(at: 1), in: cell)!]))
            }
        }
        return names
    }
}

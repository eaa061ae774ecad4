// swift-tools-version:6.0
//
// The eID Authenticator's Swift package: an idiomatic async/await API over the
// Rust core (through the uniffi bindings), a Secure Enclave keystore for iOS,
// and tests that run on Linux against the host library and a real server.
//
// Three library modules, each named for what it is (the names are set in
// bindings/uniffi.toml):
//   Eid     - the API apps use: `EidApp`, the same class as the
//             Kotlin shell's (module and type differ, so `Eid.EidApp`
//             is never ambiguous);
//   EidFFI  - the Swift bindings uniffi generates;
//   EidRust - the C header and module map of the Rust library beneath them.
//
// The generated files are build output (never committed):
//   - on Linux, `scripts/test-swift.sh` copies them into
//     Sources/EidRust/Generated (EidRust.h + module.modulemap) and
//     Sources/EidFFI/Generated (EidFFI.swift), and links the host
//     libeid_bindings.so with `-Xlinker -L<cargo target>/debug`;
//   - on Apple platforms, `build-xcframework.sh` builds EidRust.xcframework
//     next to this file (static library, header and module map) and copies
//     the Swift file; the package then uses it.
import Foundation
import PackageDescription

let packageDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().path
let xcframeworkPath = "EidRust.xcframework"
let useXCFramework = FileManager.default.fileExists(atPath: packageDir + "/" + xcframeworkPath)

let ffiTarget: Target = useXCFramework
    ? .binaryTarget(name: "EidRust", path: xcframeworkPath)
    : .systemLibrary(name: "EidRust", path: "Sources/EidRust/Generated")

let package = Package(
    name: "EidAuthenticator",
    platforms: [.iOS(.v17), .macOS(.v14)],
    products: [
        .library(name: "Eid", targets: ["Eid"]),
    ],
    targets: [
        ffiTarget,
        // The generated Swift bindings, as uniffi writes them (Swift 5 mode:
        // generated code is not ours to annotate).
        .target(
            name: "EidFFI",
            dependencies: ["EidRust"],
            path: "Sources/EidFFI",
            swiftSettings: [.swiftLanguageMode(.v5)],
            linkerSettings: useXCFramework
                // The Rust static library's system dependencies on Apple platforms.
                ? [.linkedFramework("Security"), .linkedFramework("SystemConfiguration")]
                : [.linkedLibrary("eid_bindings")]
        ),
        // The idiomatic API apps use.
        .target(
            name: "Eid",
            dependencies: ["EidFFI"],
            path: "Sources/Eid"
        ),
        // Test-only: OpenSSL's libcrypto for the software keystore on Linux
        // (no CryptoKit there, and GitHub, home of swift-crypto, is not
        // reachable from the build machines). Apple platforms use CryptoKit.
        .systemLibrary(
            name: "COpenSSL",
            path: "Tests/COpenSSL",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        .testTarget(
            name: "EidTests",
            dependencies: [
                "Eid",
                .target(name: "COpenSSL", condition: .when(platforms: [.linux])),
            ],
            path: "Tests/EidTests"
        ),
    ]
)

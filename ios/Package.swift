// swift-tools-version:6.0
//
// The eID Authenticator's Swift package: an idiomatic async/await API over the
// Rust core (through the uniffi bindings), a Secure Enclave keystore for iOS,
// and tests that run on Linux against the host library and a real server.
//
// The generated bindings are build output (never committed):
//   - on Linux, `scripts/test-swift.sh` copies them into
//     Sources/eid_bindingsFFI/Generated (header + module.modulemap) and
//     Sources/EidBindings/Generated (eid_bindings.swift), and links
//     target/debug/libeid_bindings.so with `-Xlinker -L<repo>/target/debug`;
//   - on Apple platforms, `build-xcframework.sh` builds
//     eid_bindingsFFI.xcframework next to this file (static library, header
//     and module map) and copies the Swift file; the package then uses it.
import Foundation
import PackageDescription

let packageDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().path
let xcframeworkPath = "eid_bindingsFFI.xcframework"
let useXCFramework = FileManager.default.fileExists(atPath: packageDir + "/" + xcframeworkPath)

let ffiTarget: Target = useXCFramework
    ? .binaryTarget(name: "eid_bindingsFFI", path: xcframeworkPath)
    : .systemLibrary(name: "eid_bindingsFFI", path: "Sources/eid_bindingsFFI/Generated")

let package = Package(
    name: "EidAuthenticator",
    platforms: [.iOS(.v17), .macOS(.v14)],
    products: [
        .library(name: "EidAuthenticator", targets: ["EidAuthenticator"]),
    ],
    targets: [
        ffiTarget,
        // The generated Swift bindings, as uniffi writes them (Swift 5 mode:
        // generated code is not ours to annotate).
        .target(
            name: "EidBindings",
            dependencies: ["eid_bindingsFFI"],
            path: "Sources/EidBindings",
            swiftSettings: [.swiftLanguageMode(.v5)],
            linkerSettings: useXCFramework
                // The Rust static library's system dependencies on Apple platforms.
                ? [.linkedFramework("Security"), .linkedFramework("SystemConfiguration")]
                : [.linkedLibrary("eid_bindings")]
        ),
        // The idiomatic API apps use.
        .target(
            name: "EidAuthenticator",
            dependencies: ["EidBindings"],
            path: "Sources/EidAuthenticator"
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
            name: "EidAuthenticatorTests",
            dependencies: [
                "EidAuthenticator",
                .target(name: "COpenSSL", condition: .when(platforms: [.linux])),
            ],
            path: "Tests/EidAuthenticatorTests"
        ),
    ]
)

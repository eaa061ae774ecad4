// swift-tools-version:6.0
//
// The eID Authenticator's Swift package (sources in ios/): an idiomatic
// async/await API over the Rust core (through the uniffi bindings), a Secure
// Enclave keystore for iOS, and tests that run on Linux against the host
// library and a real server. The manifest sits at the repository root because
// SwiftPM reads a git dependency's manifest there:
//
//   .package(url: "<this repository's git URL>", from: "0.1.0")
//
// Three library modules, each named for what it is (the names are set in
// bindings/uniffi.toml):
//   Eid     - the API apps use: `EidApp`, the same class as the
//             Kotlin shell's (module and type differ, so `Eid.EidApp`
//             is never ambiguous);
//   EidFFI  - the Swift bindings uniffi generates;
//   EidRust - the Rust library beneath them: a binary target (the
//             XCFramework) on Apple platforms, the C header and module map
//             of the host library on Linux.
//
// The generated files are build output (never committed):
//   - on Linux, `scripts/test-swift.sh` copies them into
//     ios/Sources/EidRust/Generated (EidRust.h + module.modulemap) and
//     ios/Sources/EidFFI/Generated (EidFFI.swift), and links the host
//     libeid_bindings.so with `-Xlinker -L<cargo target>/debug`;
//   - on Apple platforms, `ios/build-xcframework.sh` builds
//     ios/EidRust.xcframework (static library, header and module map) and
//     copies the Swift file; a release tag for apps must carry both.
//
// `#if os` here is the machine that runs SwiftPM (the manifest is compiled
// for the host): a Mac building for iOS or macOS takes the XCFramework. On a
// Mac, EID_SWIFT_HOST_LIBRARY=1 builds against a host-built dylib instead
// (what scripts/test-swift.sh does with a native Swift).
import Foundation
import PackageDescription

#if os(Linux)
let useHostLibrary = true
#else
let useHostLibrary = ProcessInfo.processInfo.environment["EID_SWIFT_HOST_LIBRARY"] == "1"
#endif

let rustTarget: Target = useHostLibrary
    ? .systemLibrary(name: "EidRust", path: "ios/Sources/EidRust/Generated")
    : .binaryTarget(name: "EidRust", path: "ios/EidRust.xcframework")

let package = Package(
    name: "EidAuthenticator",
    platforms: [.iOS(.v17), .macOS(.v14)],
    products: [
        .library(name: "Eid", targets: ["Eid"]),
    ],
    targets: [
        rustTarget,
        // The generated Swift bindings, as uniffi writes them (Swift 5 mode:
        // generated code is not ours to annotate).
        .target(
            name: "EidFFI",
            dependencies: ["EidRust"],
            path: "ios/Sources/EidFFI",
            swiftSettings: [.swiftLanguageMode(.v5)],
            linkerSettings: useHostLibrary
                ? [.linkedLibrary("eid_bindings")]
                // The Rust static library's system dependencies on Apple platforms.
                : [.linkedFramework("Security"), .linkedFramework("SystemConfiguration")]
        ),
        // The idiomatic API apps use.
        .target(
            name: "Eid",
            dependencies: ["EidFFI"],
            path: "ios/Sources/Eid"
        ),
        // Test-only: OpenSSL's libcrypto for the software keystore on Linux
        // (no CryptoKit there, and GitHub, home of swift-crypto, is not
        // reachable from the build machines). Apple platforms use CryptoKit.
        .systemLibrary(
            name: "COpenSSL",
            path: "ios/Tests/COpenSSL",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        .testTarget(
            name: "EidTests",
            dependencies: [
                "Eid",
                .target(name: "COpenSSL", condition: .when(platforms: [.linux])),
            ],
            path: "ios/Tests/EidTests"
        ),
    ]
)

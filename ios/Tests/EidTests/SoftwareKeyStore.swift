import Eid
import Foundation

#if canImport(CryptoKit)
import CryptoKit
#elseif canImport(COpenSSL)
import COpenSSL
#endif

/// A software ``KeyStore`` for tests, written in Swift: P-256 ECDSA keys in
/// memory (CryptoKit on Apple platforms, OpenSSL's libcrypto on Linux) and an
/// HMAC-SHA256 "hardware" secret. It can be told to fail, to check that a
/// keystore error reaches the app as ``EidError/KeyStore(detail:)``. It says it
/// is ``KeyProtection/software``: a release build of the library opens with it
/// only when the configuration opts in (``softwareKeyStoreOptIn``).
final class SoftwareKeyStore: KeyStore, @unchecked Sendable {
    /// How the next operations fail, if at all.
    enum FailureMode {
        /// Work normally.
        case none
        /// Throw the declared ``KeyStoreError/Failure(detail:)``.
        case declared
        /// Throw an error the bindings do not declare.
        case undeclared
    }

    struct UndeclaredError: Error {}

    private let lock = NSLock()
    private var keys: [String: SigningKey] = [:]
    private var secrets: [String: Data] = [:]
    private var failSign = FailureMode.none
    private(set) var signCount = 0

    /// Makes `sign` fail (or work again).
    func setSignFailure(_ mode: FailureMode) {
        lock.withLock { failSign = mode }
    }

    /// The aliases holding a signing key.
    var aliases: Set<String> { lock.withLock { Set(keys.keys) } }

    func createKey(alias: String) throws -> Data {
        let key = try SigningKey()
        lock.withLock { keys[alias] = key }
        return try key.publicKey()
    }

    func sign(alias: String, message: Data) throws -> Data {
        let (key, mode) = lock.withLock { () -> (SigningKey?, FailureMode) in
            signCount += 1
            return (keys[alias], failSign)
        }
        switch mode {
        case .none: break
        case .declared: throw KeyStoreError.Failure(detail: "test keystore told to fail")
        case .undeclared: throw UndeclaredError()
        }
        guard let key else { throw KeyStoreError.NotFound }
        return try key.sign(message)
    }

    func publicKey(alias: String) throws -> Data {
        guard let key = lock.withLock({ keys[alias] }) else { throw KeyStoreError.NotFound }
        return try key.publicKey()
    }

    func deleteKey(alias: String) throws {
        _ = lock.withLock { keys.removeValue(forKey: alias) }
    }

    func hardwareSecret(alias: String, input: Data) throws -> Data {
        let secret = try lock.withLock { () throws -> Data in
            if let s = secrets[alias] { return s }
            let s = try randomBytes(32)
            secrets[alias] = s
            return s
        }
        return try hmacSHA256(key: secret, data: input)
    }

    func protection() -> KeyProtection { .software }
}

/// The opt-in a release build of the library needs to open with
/// ``SoftwareKeyStore`` (`AppConfiguration.allowSoftwareKeyStore`,
/// docs/integration.md section 2).
let softwareKeyStoreOptIn = "tests only: device key in plain files"

#if canImport(CryptoKit)
/// A P-256 signing key (CryptoKit).
final class SigningKey: @unchecked Sendable {
    private let key = P256.Signing.PrivateKey()
    init() throws {}
    func publicKey() throws -> Data { key.publicKey.x963Representation }
    func sign(_ message: Data) throws -> Data { try key.signature(for: message).derRepresentation }
}

func randomBytes(_ n: Int) throws -> Data { SymmetricKey(size: .init(bitCount: n * 8)).withUnsafeBytes { Data($0) } }

func hmacSHA256(key: Data, data: Data) throws -> Data {
    Data(HMAC<SHA256>.authenticationCode(for: data, using: SymmetricKey(data: key)))
}
#elseif canImport(COpenSSL)
private func openSSLFailure(_ what: String) -> KeyStoreError {
    let code = ERR_get_error()
    return .Failure(detail: "openssl \(what) failed (error \(code))")
}

/// A P-256 signing key (OpenSSL EVP); freed with the object.
final class SigningKey: @unchecked Sendable {
    private let pkey: OpaquePointer

    init() throws {
        guard let ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_EC, nil) else { throw openSSLFailure("context") }
        defer { EVP_PKEY_CTX_free(ctx) }
        var key: OpaquePointer?
        guard EVP_PKEY_keygen_init(ctx) == 1,
              EVP_PKEY_CTX_set_ec_paramgen_curve_nid(ctx, NID_X9_62_prime256v1) == 1,
              EVP_PKEY_keygen(ctx, &key) == 1, let key
        else { throw openSSLFailure("keygen") }
        pkey = key
    }

    deinit { EVP_PKEY_free(pkey) }

    /// SEC1 uncompressed point, 65 bytes.
    func publicKey() throws -> Data {
        var out: UnsafeMutablePointer<UInt8>?
        let n = EVP_PKEY_get1_encoded_public_key(pkey, &out)
        guard n == 65, let out else { throw openSSLFailure("public key") }
        defer { CRYPTO_free(out, #fileID, #line) }
        return Data(bytes: out, count: n)
    }

    /// ECDSA with SHA-256 over `message`, DER.
    func sign(_ message: Data) throws -> Data {
        guard let md = EVP_MD_CTX_new() else { throw openSSLFailure("digest context") }
        defer { EVP_MD_CTX_free(md) }
        guard EVP_DigestSignInit(md, nil, EVP_sha256(), nil, pkey) == 1 else { throw openSSLFailure("sign init") }
        var length = 0
        let msg = [UInt8](message)
        guard EVP_DigestSign(md, nil, &length, msg, msg.count) == 1 else { throw openSSLFailure("sign size") }
        var sig = [UInt8](repeating: 0, count: length)
        guard EVP_DigestSign(md, &sig, &length, msg, msg.count) == 1 else { throw openSSLFailure("sign") }
        return Data(sig.prefix(length))
    }
}

func randomBytes(_ n: Int) throws -> Data {
    var bytes = [UInt8](repeating: 0, count: n)
    guard RAND_bytes(&bytes, Int32(n)) == 1 else { throw openSSLFailure("random") }
    return Data(bytes)
}

func hmacSHA256(key: Data, data: Data) throws -> Data {
    var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
    var length: UInt32 = 0
    let k = [UInt8](key), d = [UInt8](data)
    guard HMAC(EVP_sha256(), k, Int32(k.count), d, d.count, &out, &length) != nil, length == 32
    else { throw openSSLFailure("hmac") }
    return Data(out.prefix(Int(length)))
}
#endif

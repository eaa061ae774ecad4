#if canImport(Security) && os(iOS)
import CryptoKit
import Foundation
import Security

/// The core's ``KeyStore`` on the iPhone's Secure Enclave.
///
/// - Signing keys are P-256 keys created inside the Secure Enclave
///   (`kSecAttrTokenIDSecureEnclave`), usable only while the device is
///   unlocked and never leaving it; signatures are ECDSA with SHA-256 in DER
///   (`.ecdsaSignatureMessageX962SHA256`); public keys are SEC1 uncompressed
///   (65 bytes, `SecKeyCopyExternalRepresentation`).
/// - ``hardwareSecret(alias:input:)`` is an HMAC-SHA256 of the input under the
///   ECDH secret of a Secure Enclave key with its own public key: the secret
///   exists only while this device's enclave holds the key, so a copied
///   database is useless elsewhere.
///
/// Thread-safe: the keychain calls are.
public final class SecureEnclaveKeyStore: KeyStore, @unchecked Sendable {
    private let tagPrefix: String

    /// Creates the keystore; keychain tags are `<tagPrefix>.<alias>`.
    public init(tagPrefix: String = (Bundle.main.bundleIdentifier ?? "eid") + ".eid-keys") {
        self.tagPrefix = tagPrefix
    }

    private func tag(_ alias: String) -> Data {
        Data("\(tagPrefix).\(alias)".utf8)
    }

    private static func failure(_ what: String, _ error: Unmanaged<CFError>?) -> KeyStoreError {
        let detail = error.map { String(describing: $0.takeRetainedValue()) } ?? "unknown"
        return .Failure(detail: "\(what): \(detail)")
    }

    private func newKey(alias: String) throws -> SecKey {
        var error: Unmanaged<CFError>?
        guard let access = SecAccessControlCreateWithFlags(
            nil, kSecAttrAccessibleWhenUnlockedThisDeviceOnly, .privateKeyUsage, &error)
        else { throw Self.failure("access control", error) }
        let attributes: [String: Any] = [
            kSecAttrKeyType as String: kSecAttrKeyTypeECSECPrimeRandom,
            kSecAttrKeySizeInBits as String: 256,
            kSecAttrTokenID as String: kSecAttrTokenIDSecureEnclave,
            kSecPrivateKeyAttrs as String: [
                kSecAttrIsPermanent as String: true,
                kSecAttrApplicationTag as String: tag(alias),
                kSecAttrAccessControl as String: access,
            ] as [String: Any],
        ]
        guard let key = SecKeyCreateRandomKey(attributes as CFDictionary, &error) else {
            throw Self.failure("create key", error)
        }
        return key
    }

    private func existingKey(alias: String) throws -> SecKey? {
        let query: [String: Any] = [
            kSecClass as String: kSecClassKey,
            kSecAttrApplicationTag as String: tag(alias),
            kSecAttrKeyType as String: kSecAttrKeyTypeECSECPrimeRandom,
            kSecReturnRef as String: true,
        ]
        var item: CFTypeRef?
        let status = SecItemCopyMatching(query as CFDictionary, &item)
        switch status {
        case errSecSuccess:
            // A successful key query returns a SecKey.
            return (item as! SecKey)  // swiftlint:disable:this force_cast
        case errSecItemNotFound:
            return nil
        default:
            throw KeyStoreError.Failure(detail: "keychain lookup failed: \(status)")
        }
    }

    private func key(alias: String) throws -> SecKey {
        guard let key = try existingKey(alias: alias) else { throw KeyStoreError.NotFound }
        return key
    }

    private static func sec1(_ privateKey: SecKey) throws -> Data {
        guard let publicKey = SecKeyCopyPublicKey(privateKey) else {
            throw KeyStoreError.Failure(detail: "no public key")
        }
        var error: Unmanaged<CFError>?
        guard let bytes = SecKeyCopyExternalRepresentation(publicKey, &error) as Data? else {
            throw failure("export public key", error)
        }
        return bytes  // 0x04 || X || Y, 65 bytes
    }

    /// Creates a Secure Enclave P-256 key under `alias`, replacing any key
    /// there; returns its SEC1 public key.
    public func createKey(alias: String) throws -> Data {
        try deleteKey(alias: alias)
        return try Self.sec1(newKey(alias: alias))
    }

    /// ECDSA P-256/SHA-256 over `message` (hashed here), DER.
    public func sign(alias: String, message: Data) throws -> Data {
        var error: Unmanaged<CFError>?
        guard let signature = SecKeyCreateSignature(
            try key(alias: alias), .ecdsaSignatureMessageX962SHA256, message as CFData, &error)
        else { throw Self.failure("sign", error) }
        return signature as Data
    }

    /// The SEC1 public key under `alias`.
    public func publicKey(alias: String) throws -> Data {
        try Self.sec1(key(alias: alias))
    }

    /// Deletes the key under `alias`; a missing key is fine.
    public func deleteKey(alias: String) throws {
        let query: [String: Any] = [
            kSecClass as String: kSecClassKey,
            kSecAttrApplicationTag as String: tag(alias),
        ]
        let status = SecItemDelete(query as CFDictionary)
        guard status == errSecSuccess || status == errSecItemNotFound else {
            throw KeyStoreError.Failure(detail: "keychain delete failed: \(status)")
        }
    }

    /// HMAC-SHA256 of `input` under the ECDH secret of the Secure Enclave key
    /// `alias` (created on first use) with its own public key: 32 bytes.
    public func hardwareSecret(alias: String, input: Data) throws -> Data {
        let privateKey = try existingKey(alias: alias) ?? newKey(alias: alias)
        guard let publicKey = SecKeyCopyPublicKey(privateKey) else {
            throw KeyStoreError.Failure(detail: "no public key")
        }
        var error: Unmanaged<CFError>?
        guard let shared = SecKeyCopyKeyExchangeResult(
            privateKey, .ecdhKeyExchangeStandard, publicKey, [:] as CFDictionary, &error) as Data?
        else { throw Self.failure("key exchange", error) }
        let mac = HMAC<SHA256>.authenticationCode(for: input, using: SymmetricKey(data: shared))
        return Data(mac)
    }

    /// The keys are created in the Secure Enclave and never leave it.
    public func protection() -> KeyProtection { .secureEnclave }
}
#endif

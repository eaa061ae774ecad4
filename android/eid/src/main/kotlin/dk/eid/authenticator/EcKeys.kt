package dk.eid.authenticator

import java.math.BigInteger
import java.security.interfaces.ECPublicKey

/** Helpers for [dk.eid.authenticator.ffi.KeyStore] implementations. */
object EcKeys {
    /** Length of a P-256 coordinate in bytes. */
    private const val COORDINATE = 32

    /**
     * The SEC1 uncompressed encoding (`0x04 ‖ X ‖ Y`, 65 bytes) of a P-256
     * public key, which is what the core expects from `createKey` and
     * `publicKey`. Works for any JCA provider (Android Keystore included),
     * unlike slicing `key.encoded`.
     */
    fun sec1Uncompressed(key: ECPublicKey): ByteArray {
        require(key.params.curve.field.fieldSize == 256) { "not a P-256 key" }
        val out = ByteArray(1 + 2 * COORDINATE)
        out[0] = 0x04
        fixed(key.w.affineX).copyInto(out, 1)
        fixed(key.w.affineY).copyInto(out, 1 + COORDINATE)
        return out
    }

    /** A non-negative coordinate as exactly 32 big-endian bytes. */
    private fun fixed(n: BigInteger): ByteArray {
        require(n.signum() >= 0 && n.bitLength() <= COORDINATE * 8) { "not a P-256 coordinate" }
        val raw = n.toByteArray() // may carry a leading sign byte or be shorter
        val digits = if (raw.size > COORDINATE) raw.copyOfRange(raw.size - COORDINATE, raw.size) else raw
        return ByteArray(COORDINATE - digits.size) + digits
    }
}

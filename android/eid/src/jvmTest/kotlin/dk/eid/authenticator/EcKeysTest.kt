package dk.eid.authenticator

import java.security.KeyFactory
import java.security.KeyPairGenerator
import java.security.Signature
import java.security.interfaces.ECPublicKey
import java.security.spec.ECGenParameterSpec
import java.security.spec.X509EncodedKeySpec
import kotlin.test.assertContentEquals
import kotlin.test.assertEquals
import kotlin.test.assertTrue
import org.junit.jupiter.api.Test

class EcKeysTest {
    @Test
    fun `SEC1 encoding matches the tail of the X509 encoding for many keys`() {
        val gen = KeyPairGenerator.getInstance("EC").apply { initialize(ECGenParameterSpec("secp256r1")) }
        repeat(200) { // enough to hit coordinates with leading zero bytes
            val key = gen.generateKeyPair().public as ECPublicKey
            val sec1 = EcKeys.sec1Uncompressed(key)
            assertEquals(65, sec1.size)
            assertEquals(0x04, sec1[0].toInt())
            // A P-256 SubjectPublicKeyInfo ends with the uncompressed point.
            val x509 = key.encoded
            assertContentEquals(x509.copyOfRange(x509.size - 65, x509.size), sec1)
        }
    }

    @Test
    fun `software keystore signs DER that verifies under its SEC1 public key`() {
        val ks = SoftwareKeyStore()
        val sec1 = ks.createKey("k")
        assertContentEquals(sec1, ks.publicKey("k"))
        val message = "to be signed".toByteArray()
        val der = ks.sign("k", message)
        assertEquals(0x30, der[0].toInt(), "DER SEQUENCE")

        // Rebuild the key from SEC1 via a P-256 SPKI prefix and verify.
        val spkiPrefix = KeyPairGenerator.getInstance("EC")
            .apply { initialize(ECGenParameterSpec("secp256r1")) }
            .generateKeyPair().public.encoded.let { it.copyOfRange(0, it.size - 65) }
        val pub = KeyFactory.getInstance("EC").generatePublic(X509EncodedKeySpec(spkiPrefix + sec1))
        val ok = Signature.getInstance("SHA256withECDSA").run {
            initVerify(pub)
            update(message)
            verify(der)
        }
        assertTrue(ok)
        assertEquals(32, ks.hardwareSecret("h", message).size)
    }
}

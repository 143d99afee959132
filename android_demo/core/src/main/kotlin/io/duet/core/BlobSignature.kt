/** Ed25519 signatures of slot blobs (mirrors toolkit.signing.verify): the manifest's key, the X-Blob-Signature header. */
package io.duet.core

import java.security.InvalidKeyException
import java.security.KeyFactory
import java.security.NoSuchAlgorithmException
import java.security.Signature
import java.security.SignatureException
import java.security.spec.InvalidKeySpecException
import java.security.spec.X509EncodedKeySpec
import java.util.Base64

/**
 * Verification of a slot blob's signature with the JDK's own Ed25519 ("Ed25519" KeyFactory and Signature: Java 15+;
 * on Android only where the platform's providers offer it, see android_demo/README.md). A platform without Ed25519
 * refuses every signed blob ([Reason.BLOB]) rather than accepting it unverified.
 */
object BlobSignature {
    /** The manifest's signing.algorithm, the only one there is. */
    const val ALGORITHM = "ed25519"

    /** The response header that carries base64 of the 64 signature bytes (over the whole body). */
    const val HEADER = "X-Blob-Signature"

    /** An Ed25519 signature's size in bytes. */
    const val SIGNATURE_BYTES = 64

    /** The DER SubjectPublicKeyInfo of an Ed25519 key before its 32 raw key bytes (RFC 8410). */
    private val SPKI_PREFIX = byteArrayOf(0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00)

    /** Strict base64 (standard alphabet, padded, nothing else), like Python's b64decode(validate=True). */
    private val BASE64 = Regex("(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")

    /**
     * Return when [signature] (base64) is the Ed25519 signature of [blob] by [publicKey] (base64 DER SPKI, the
     * manifest's signing.public_key); otherwise a [Reason.BLOB] refusal saying which check failed.
     */
    fun verify(publicKey: String, blob: ByteArray, signature: String) {
        val der = decode(publicKey) ?: refuse(Reason.BLOB, "the manifest's signing public key is not base64")
        val raw = decode(signature) ?: refuse(Reason.BLOB, "slot blob signature is not base64")
        if (der.size != SPKI_PREFIX.size + 32 || !der.copyOf(SPKI_PREFIX.size).contentEquals(SPKI_PREFIX)) {
            refuse(Reason.BLOB, "the manifest's signing public key is not an Ed25519 SubjectPublicKeyInfo")
        }
        if (raw.size != SIGNATURE_BYTES) {
            refuse(Reason.BLOB, "slot blob signature has ${raw.size} bytes, Ed25519 signatures have $SIGNATURE_BYTES")
        }
        val verifies = try {
            val key = try {
                KeyFactory.getInstance("Ed25519").generatePublic(X509EncodedKeySpec(der))
            } catch (e: InvalidKeySpecException) {
                throw DuetException(Reason.BLOB, "the manifest's signing public key is not a valid Ed25519 key " +
                    "(${e.message})", cause = e)
            }
            val verifier = Signature.getInstance("Ed25519")
            verifier.initVerify(key)
            verifier.update(blob)
            verifier.verify(raw)
        } catch (e: NoSuchAlgorithmException) {
            throw DuetException(Reason.BLOB, "this platform offers no Ed25519 (${e.message}): the slot blob's " +
                "signature cannot be verified, refused", cause = e)
        } catch (e: SignatureException) {
            false // a signature the provider cannot even parse does not verify
        } catch (e: InvalidKeyException) {
            throw DuetException(Reason.BLOB, "the manifest's signing public key is refused by the Ed25519 verifier " +
                "(${e.message})", cause = e)
        }
        if (!verifies) {
            refuse(Reason.BLOB, "slot blob signature does not match: the blob was changed after the service signed it")
        }
    }

    private fun decode(text: String): ByteArray? =
        if (BASE64.matches(text)) Base64.getDecoder().decode(text) else null
}

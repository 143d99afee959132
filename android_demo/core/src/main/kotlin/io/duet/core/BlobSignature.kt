/** Ed25519 signatures of slot blobs (mirrors toolkit.protocol.signing.verify) behind one verifier interface, and key pinning. */
package io.duet.core

import org.bouncycastle.crypto.params.Ed25519PublicKeyParameters
import org.bouncycastle.crypto.signers.Ed25519Signer
import java.security.GeneralSecurityException
import java.security.KeyFactory
import java.security.NoSuchAlgorithmException
import java.security.Signature
import java.security.SignatureException
import java.security.spec.X509EncodedKeySpec
import java.util.Base64

/** One way to check an Ed25519 signature; [BlobSignature] does every other check around it. */
interface Ed25519Verifier {
    /** What the verifier is, for messages and tests ("bouncycastle", "platform"). */
    val name: String

    /** True when [signature] (64 bytes) is the signature of [message] by the raw 32-byte public key [rawKey]. */
    fun verify(rawKey: ByteArray, message: ByteArray, signature: ByteArray): Boolean
}

/** Bouncy Castle's pure-Java Ed25519 (org.bouncycastle bcprov): the same on every Android API level and any JVM. */
object BouncyCastleEd25519 : Ed25519Verifier {
    override val name = "bouncycastle"

    override fun verify(rawKey: ByteArray, message: ByteArray, signature: ByteArray): Boolean {
        val signer = Ed25519Signer()
        signer.init(false, Ed25519PublicKeyParameters(rawKey, 0))
        signer.update(message, 0, message.size)
        return signer.verifySignature(signature)
    }
}

/**
 * The platform's java.security Ed25519 ("Ed25519" KeyFactory and Signature: JDK 15+; on Android the SDK names
 * arrive at API 33 and Conscrypt's support later still). [available] says whether this runtime has it.
 */
object PlatformEd25519 : Ed25519Verifier {
    override val name = "platform"

    /** Whether java.security offers Ed25519 here. */
    val available: Boolean by lazy {
        try {
            KeyFactory.getInstance("Ed25519")
            Signature.getInstance("Ed25519")
            true
        } catch (e: NoSuchAlgorithmException) {
            false
        }
    }

    override fun verify(rawKey: ByteArray, message: ByteArray, signature: ByteArray): Boolean {
        val key = KeyFactory.getInstance("Ed25519").generatePublic(X509EncodedKeySpec(BlobSignature.spki(rawKey)))
        val verifier = Signature.getInstance("Ed25519")
        verifier.initVerify(key)
        verifier.update(message)
        return try {
            verifier.verify(signature)
        } catch (e: SignatureException) {
            false // a signature the provider cannot even parse does not verify
        }
    }
}

/** Which verifier a client uses when none is given. */
object Ed25519Verifiers {
    /** The platform's where it exists, else Bouncy Castle's (every Android API level from the app's minSdk). */
    val default: Ed25519Verifier by lazy { choose(PlatformEd25519.available) }

    /** The rule of [default], for a platform that does or does not offer Ed25519. */
    fun choose(platformHasEd25519: Boolean): Ed25519Verifier =
        if (platformHasEd25519) PlatformEd25519 else BouncyCastleEd25519
}

/** Verification of a slot blob's signature: the manifest's key, the X-Blob-Signature header, one [Ed25519Verifier]. */
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

    /** The DER SubjectPublicKeyInfo of a raw 32-byte Ed25519 key. */
    fun spki(rawKey: ByteArray): ByteArray = SPKI_PREFIX + rawKey

    /**
     * Return when [signature] (base64) is the Ed25519 signature of [blob] by [publicKey] (base64 DER SPKI, the
     * manifest's signing.public_key), checked by [verifier]; otherwise a [Reason.BLOB] refusal saying which check
     * failed. A verifier that throws (a platform provider refusing the key) refuses the blob too.
     */
    fun verify(publicKey: String, blob: ByteArray, signature: String, verifier: Ed25519Verifier = Ed25519Verifiers.default) {
        val der = decode(publicKey) ?: refuse(Reason.BLOB, "the manifest's signing public key is not base64")
        val raw = decode(signature) ?: refuse(Reason.BLOB, "slot blob signature is not base64")
        if (der.size != SPKI_PREFIX.size + 32 || !der.copyOf(SPKI_PREFIX.size).contentEquals(SPKI_PREFIX)) {
            refuse(Reason.BLOB, "the manifest's signing public key is not an Ed25519 SubjectPublicKeyInfo")
        }
        if (raw.size != SIGNATURE_BYTES) {
            refuse(Reason.BLOB, "slot blob signature has ${raw.size} bytes, Ed25519 signatures have $SIGNATURE_BYTES")
        }
        val verifies = try {
            verifier.verify(der.copyOfRange(SPKI_PREFIX.size, der.size), blob, raw)
        } catch (e: GeneralSecurityException) {
            throw keyRefused(verifier, e)
        } catch (e: IllegalArgumentException) {
            throw keyRefused(verifier, e)
        }
        if (!verifies) {
            refuse(Reason.BLOB, "slot blob signature does not match: the blob was changed after the service signed it")
        }
    }

    private fun keyRefused(verifier: Ed25519Verifier, e: Exception) = DuetException(Reason.BLOB, "the ${verifier.name} " +
        "Ed25519 verifier refused the manifest's signing key (${e.message}): the slot blob cannot be verified, refused",
        cause = e)

    private fun decode(text: String): ByteArray? =
        if (BASE64.matches(text)) Base64.getDecoder().decode(text) else null
}

/**
 * Key pinning (mirrors toolkit.client.check_pinned_key): a client built with a signing key accepts only manifests that
 * name exactly that key, so a manifest from elsewhere can neither swap the key nor drop signing.
 */
object SigningPin {
    /** A [Reason.MANIFEST] refusal when [pinnedKey] is set (not null, not "") and [manifest] names another key or none. */
    fun check(manifest: Manifest, pinnedKey: String?) {
        if (pinnedKey == null || pinnedKey == "") return
        val found = manifest.signing?.publicKey
        if (found != pinnedKey) {
            val said = if (found != null) "names the signing key ${found.take(12)}..." else "carries no signing key"
            refuse(Reason.MANIFEST, "the manifest $said, but this client is pinned to ${pinnedKey.take(12)}...: refused " +
                "(a manifest from elsewhere, or the service's key changed: update the pinned key)")
        }
    }
}

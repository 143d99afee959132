/** A slot answer as received from the service (body and headers), and its check before decoding. */
package io.duet.core

/** One answer of POST /v1/generate or GET /v1/slots/base, before any check. */
class SlotAnswer(
    /** The response body: a safetensors slot blob. */
    val blob: ByteArray,
    /** The X-Blob-SHA256 header ("" when absent). */
    val sha256: String,
    /** The X-Model-Version header ("" when absent). */
    val modelVersion: String,
    /** The X-Slot-Dtype header ("" when absent). */
    val slotDtype: String = "",
    /** The X-Blob-Signature header: base64 of the Ed25519 signature of [blob] ("" when absent). */
    val signature: String = ""
) {
    /** The same answer with other body bytes (the headers kept): what a corruption in transit looks like. */
    fun withBlob(other: ByteArray): SlotAnswer = SlotAnswer(other, sha256, modelVersion, slotDtype, signature)

    /** The same answer with another X-Blob-Signature header ("" = none). */
    fun withSignature(other: String): SlotAnswer = SlotAnswer(blob, sha256, modelVersion, slotDtype, other)

    /**
     * The answer's slots, after checking (mirrors toolkit.client.check_answer), in this order: the body's sha256
     * equals X-Blob-SHA256 (else [Reason.BLOB], "corrupted in transit"); [manifest] names the [pinnedKey] when one is
     * set ([SigningPin], else [Reason.MANIFEST]); when the manifest carries a signing key, X-Blob-Signature is present
     * and verifies with [verifier] ([BlobSignature.verify], else [Reason.BLOB]); X-Model-Version equals the
     * manifest's (else [Reason.MANIFEST]); [SlotBlob.decode] (names, shapes, finite values); the blob's own
     * `__metadata__`, which the signature covers ([SlotBlob.checkMetadata], else [Reason.BLOB]); every value within
     * its slot's max_abs ([SlotBlob.checkBounds], else [Reason.BLOB], "refused as poisoned").
     */
    fun check(manifest: Manifest, pinnedKey: String? = null, verifier: Ed25519Verifier = Ed25519Verifiers.default): SlotSet {
        val digest = Sha256.hex(blob)
        if (digest != sha256) {
            refuse(Reason.BLOB, "slot blob has sha256 $digest, the service announced ${if (sha256 == "") "none" else sha256}: " +
                "corrupted in transit")
        }
        SigningPin.check(manifest, pinnedKey)
        val signing = manifest.signing
        if (signing != null) {
            if (signature == "") refuse(Reason.BLOB, "slot blob is not signed, but the manifest carries a signing key")
            BlobSignature.verify(signing.publicKey, blob, signature, verifier)
        }
        if (modelVersion != manifest.modelVersion) {
            refuse(Reason.MANIFEST, "slots come from model version ${if (modelVersion == "") "unknown" else modelVersion}, " +
                "the device's program from ${manifest.modelVersion}: fetch the manifest and the program again")
        }
        val file = Safetensors.decode(blob)
        val slots = SlotBlob.decode(file, manifest.slots)
        SlotBlob.checkMetadata(file.metadata, manifest)
        SlotBlob.checkBounds(slots)
        return slots
    }
}

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
    val slotDtype: String = ""
) {
    /** The same answer with other body bytes (the headers kept): what a corruption in transit looks like. */
    fun withBlob(other: ByteArray): SlotAnswer = SlotAnswer(other, sha256, modelVersion, slotDtype)

    /**
     * The answer's slots, after checking (mirrors toolkit.client.check_answer): the body's sha256 equals
     * X-Blob-SHA256 (else [Reason.BLOB], "corrupted in transit"), X-Model-Version equals the manifest's
     * (else [Reason.MANIFEST]), then [SlotBlob.decode].
     */
    fun check(manifest: Manifest): SlotSet {
        val digest = Sha256.hex(blob)
        if (digest != sha256) {
            refuse(Reason.BLOB, "slot blob has sha256 $digest, the service announced ${if (sha256 == "") "none" else sha256}: " +
                "corrupted in transit")
        }
        if (modelVersion != manifest.modelVersion) {
            refuse(Reason.MANIFEST, "slots come from model version ${if (modelVersion == "") "unknown" else modelVersion}, " +
                "the device's program from ${manifest.modelVersion}: fetch the manifest and the program again")
        }
        return SlotBlob.decode(blob, manifest)
    }
}

/** The manifest (format 1) as immutable values: the program's inputs, output, slots, call order and targets. */
package io.duet.core

/** One program input or output: name, fixed shape and dtype ("int32" or "float32"). */
data class TensorSpec(val name: String, val shape: List<Int>, val dtype: String) {
    /** Number of elements. */
    val numel: Long get() = shape.fold(1L) { n, d -> n * d }
}

/**
 * One swappable parameter tensor: float32, at [offset] with [nbytes] inside the flat little-endian slot blob.
 * [maxAbs] is the manifest's optional `max_abs` (> 0): the largest |value| a device accepts in this slot (null: no bound).
 */
data class SlotSpec(
    val name: String,
    val shape: List<Int>,
    val dtype: String,
    val offset: Long,
    val nbytes: Long,
    val maxAbs: Double? = null
) {
    /** Number of elements. */
    val numel: Long get() = shape.fold(1L) { n, d -> n * d }
}

/** One downloadable program file and how its runtime names the program's arguments. */
data class Target(
    /** The manifest's key for it, e.g. "executorch", "tflite", "coreml" (also the download URL's last part). */
    val name: String,
    /** File name as served (no directories). */
    val file: String,
    /** Size in bytes as served. */
    val bytes: Long,
    /** sha256 of the served bytes, 64 lowercase hex digits. */
    val sha256: String,
    /** Runtime and version the file was validated in. */
    val runtime: String,
    /** How this target's static layers were compressed. */
    val quantization: String,
    /** "file", or "zip" for a package directory served as a zip. */
    val servedAs: String,
    /** The runtime's name of each call_signature argument (TFLite args_0..N), or null when it uses positions. */
    val inputNames: List<String>?,
    /** The runtime's name of the output, when it has one. */
    val outputName: String?,
    /** What an app needs to run the file (kernels to link, compute units). */
    val notes: List<String>
) {
    /** The file's name in the download cache: [file], plus ".zip" when served as a zip. */
    val cachedFileName: String get() = if (servedAs == "zip") "$file.zip" else file
}

/**
 * The manifest's `signing` object: slot blobs carry X-Blob-Signature, an Ed25519 signature by [publicKey]
 * (base64 of the 44-byte DER SubjectPublicKeyInfo). [algorithm] is always "ed25519".
 */
data class Signing(val algorithm: String, val publicKey: String)

/** A checked manifest; build it with [Manifest.parse]. */
data class Manifest(
    val formatVersion: Int,
    /** 16 lowercase hex digits: the run's weights; generated slots carry it in X-Model-Version. */
    val modelVersion: String,
    val task: String,
    val inputs: List<TensorSpec>,
    val output: TensorSpec,
    /** The slots in blob and call order. */
    val slots: List<SlotSpec>,
    /** Size of the flat float32 slot blob (the sum of the slots' nbytes). */
    val slotBlobBytes: Long,
    /** The program's argument order: the input names, then the slot names. */
    val callSignature: List<String>,
    /** The top-level quantization mode: "none" or "int8". */
    val quantizationMode: String,
    /** The targets by name, in manifest order. */
    val targets: Map<String, Target>,
    /** generate.request_schema as compact JSON text (the JSON Schema of a generate body), when the manifest has it. */
    val requestSchema: String? = null,
    /** The key that signs slot blobs (the manifest's `signing`), when the service signs them; see [BlobSignature]. */
    val signing: Signing? = null
) {
    /** The target called [name]; a [Reason.MANIFEST] error naming the ones there are otherwise. */
    fun target(name: String): Target = targets[name]
        ?: refuse(Reason.MANIFEST, "the manifest has no target '$name'; it has ${targets.keys.joinToString(", ")}")

    companion object {
        /** The format this core understands. */
        const val FORMAT_VERSION = 1

        /** Parse and check manifest JSON text; every violation is a [DuetException] of [Reason.MANIFEST]. */
        fun parse(text: String): Manifest = ManifestParser.parse(text)

        /** Parse and check manifest JSON bytes (UTF-8). */
        fun parse(bytes: ByteArray): Manifest = ManifestParser.parse(String(bytes, Charsets.UTF_8))
    }
}

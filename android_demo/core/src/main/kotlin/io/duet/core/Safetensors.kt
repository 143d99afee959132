/** Strict safetensors decoder for slot blobs (F32 and F16 tensors); every malformed blob is a [Reason.BLOB] error. */
package io.duet.core

import com.google.gson.JsonObject
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.charset.CharacterCodingException
import java.nio.charset.CodingErrorAction

/** One tensor of a safetensors file: [begin] and [end] are byte offsets inside the data (after the header). */
data class TensorEntry(val name: String, val dtype: String, val shape: List<Long>, val begin: Long, val end: Long) {
    val numel: Long get() = shape.fold(1L) { n, d -> n * d }
}

/** A decoded safetensors file: metadata, the tensors in data order, and their values as Float32. */
class SafetensorsFile internal constructor(
    val metadata: Map<String, String>,
    /** The tensors sorted by their data offset. */
    val tensors: List<TensorEntry>,
    private val bytes: ByteArray,
    private val dataStart: Int
) {
    /** The tensor called [name], or null. */
    fun entry(name: String): TensorEntry? = tensors.firstOrNull { it.name == name }

    /** The tensor's values converted to Float32 (F16 exactly), read little-endian. */
    fun floats(entry: TensorEntry): FloatArray {
        val buffer = ByteBuffer.wrap(bytes, dataStart + entry.begin.toInt(), (entry.end - entry.begin).toInt())
            .slice().order(ByteOrder.LITTLE_ENDIAN)
        val out = FloatArray(entry.numel.toInt())
        if (entry.dtype == "F32") {
            buffer.asFloatBuffer().get(out)
        } else {
            val halves = buffer.asShortBuffer()
            for (i in out.indices) out[i] = halfToFloat(halves.get(i).toInt() and 0xffff)
        }
        return out
    }
}

/** Decoder of slot blobs: the header, offsets and sizes are all checked before any value is read. */
object Safetensors {
    /** Largest header accepted, in bytes. */
    const val MAX_HEADER_BYTES = 100_000_000L

    /** Bytes per element of the dtypes a slot blob may hold. */
    val DTYPE_SIZES: Map<String, Int> = linkedMapOf("F32" to 4, "F16" to 2)

    /** Decode [blob]; a [DuetException] of [Reason.BLOB] says what is wrong. */
    fun decode(blob: ByteArray): SafetensorsFile {
        if (blob.size < 8) fail("${blob.size} bytes is too short to be safetensors (8-byte header length first)")
        val n = ByteBuffer.wrap(blob, 0, 8).order(ByteOrder.LITTLE_ENDIAN).long
        if (n < 0 || n > MAX_HEADER_BYTES) fail("header length ${java.lang.Long.toUnsignedString(n)} exceeds $MAX_HEADER_BYTES bytes")
        if (8 + n > blob.size) fail("header length $n runs past the end of the ${blob.size}-byte blob")
        val header = headerObject(blob, n.toInt())
        var metadata: Map<String, String> = emptyMap()
        val tensors = ArrayList<TensorEntry>()
        for ((name, value) in header.entrySet()) {
            if (name == "__metadata__") metadata = metadata(value) else tensors.add(entry(name, value))
        }
        tensors.sortWith(compareBy<TensorEntry> { it.begin }.thenBy { it.end })
        var position = 0L
        for (t in tensors) {
            if (t.begin != position) {
                fail("tensor '${t.name}' starts at data byte ${t.begin}, expected $position: tensors must be contiguous")
            }
            position = t.end
        }
        val dataSize = blob.size - 8 - n
        if (position != dataSize) fail("the tensors cover $position bytes, the blob holds $dataSize data bytes")
        return SafetensorsFile(metadata, tensors, blob, 8 + n.toInt())
    }

    private fun fail(message: String): Nothing = refuse(Reason.BLOB, "slot blob: $message")

    private fun headerObject(blob: ByteArray, n: Int): JsonObject {
        val text = try {
            Charsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT).onUnmappableCharacter(CodingErrorAction.REPORT)
                .decode(ByteBuffer.wrap(blob, 8, n)).toString()
        } catch (e: CharacterCodingException) {
            fail("the header is not UTF-8")
        }
        if (firstNonJsonSpace(text) != '{') fail("the header does not start with '{'")
        val element = try {
            parseStrictJson(text, refuseDuplicates = true)
        } catch (e: DuplicateKeyException) {
            fail("the header names '${e.key}' twice")
        }
        return element as? JsonObject ?: fail("the header is not a JSON object")
    }

    private fun metadata(value: com.google.gson.JsonElement): Map<String, String> {
        val obj = value as? JsonObject ?: fail("__metadata__ should be an object of strings")
        val out = LinkedHashMap<String, String>()
        for ((k, v) in obj.entrySet()) out[k] = v.asTextOrNull() ?: fail("__metadata__ '$k' should be a string")
        return out
    }

    private fun entry(name: String, value: com.google.gson.JsonElement): TensorEntry {
        val fields = JsonFields(value as? JsonObject ?: fail("tensor '$name': its entry should be an object"),
            "slot blob: tensor '$name'", Reason.BLOB)
        val dtype = fields.string("dtype")
        val size = DTYPE_SIZES[dtype]
            ?: fields.fail("dtype $dtype is not supported; slot blobs hold ${DTYPE_SIZES.keys.joinToString(" or ")}")
        val shape = fields.array("shape").map { d ->
            val v = d.asIntegerOrNull() ?: fields.fail("shape should hold non-negative integers, found $d")
            if (v < 0) fields.fail("shape should hold non-negative integers, found $v")
            v
        }
        val offsets = fields.array("data_offsets").map { it.asIntegerOrNull() ?: -1L }
        if (offsets.size != 2 || offsets[0] < 0 || offsets[1] < offsets[0]) {
            fields.fail("data_offsets should be [begin, end] with 0 <= begin <= end")
        }
        val expected = try {
            shape.fold(size.toLong()) { acc, d -> Math.multiplyExact(acc, d) }
        } catch (e: ArithmeticException) {
            fields.fail("shape $shape is too large")
        }
        if (offsets[1] - offsets[0] != expected) {
            fields.fail("${offsets[1] - offsets[0]} bytes do not hold $dtype of shape $shape ($expected bytes)")
        }
        return TensorEntry(name, dtype, shape, offsets[0], offsets[1])
    }
}

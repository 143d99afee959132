/** Test fixtures: a small valid manifest, a test-side safetensors writer, and assertions on refusals. */
package io.duet.core

import com.google.gson.Gson
import com.google.gson.JsonArray
import com.google.gson.JsonObject
import com.google.gson.JsonParser
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import java.nio.ByteBuffer
import java.nio.ByteOrder

object Fixtures {
    const val MODEL_VERSION = "0123456789abcdef"
    val SHA = "a".repeat(64)

    /** A valid manifest: inputs items (int32 [1, 4]) and mask; slots w (float32 [2, 3]) and b ([3]); two targets. */
    fun manifestJson(): JsonObject = JsonParser.parseString("""
        {"format_version": 1, "toolkit_version": "0.1", "task": "recommendation",
         "run": {"name": "t", "config_sha256": "$SHA"}, "model_version": "$MODEL_VERSION", "created": "now",
         "inputs": [{"name": "items", "shape": [1, 4], "dtype": "int32", "description": ""},
                    {"name": "mask", "shape": [1, 4], "dtype": "float32", "description": ""}],
         "output": {"name": "scores", "shape": [1, 10], "dtype": "float32", "description": ""},
         "slots": [{"name": "head.w", "shape": [2, 3], "dtype": "float32", "offset": 0, "nbytes": 24},
                   {"name": "head.b", "shape": [3], "dtype": "float32", "offset": 24, "nbytes": 12}],
         "slot_blob": {"byte_order": "little", "dtype": "float32", "nbytes": 36},
         "call_signature": ["items", "mask", "head.w", "head.b"],
         "quantization": {"mode": "int8", "scope": "static"},
         "targets": {
           "executorch": {"file": "model.pte", "bytes": 10, "sha256": "$SHA", "runtime": "et", "quantization": "int8",
                          "served_as": "file", "notes": ["link the quantized kernels"]},
           "tflite": {"file": "model.tflite", "bytes": 10, "sha256": "$SHA", "runtime": "litert", "quantization": "int8",
                      "input_names": ["args_0", "args_1", "args_2", "args_3"], "output_name": "output_0"},
           "coreml": {"file": "model.mlpackage", "bytes": 10, "sha256": "$SHA", "runtime": "coreml",
                      "quantization": "int8", "served_as": "zip"}}}
    """.trimIndent()).asJsonObject

    fun manifest(): Manifest = Manifest.parse(Gson().toJson(manifestJson()))

    /**
     * The fixture manifest as a recommendation program: history (1, 4), candidates (1, 3) and a request schema
     * (ids 1..9, at most 3 items, timestamps required).
     */
    fun recommendationJson(): JsonObject {
        val json = manifestJson()
        json.add("inputs", JsonParser.parseString("""[{"name": "history", "shape": [1, 4], "dtype": "int32", "description": ""},
            {"name": "candidates", "shape": [1, 3], "dtype": "int32", "description": ""}]"""))
        json.add("call_signature", Gson().toJsonTree(listOf("history", "candidates", "head.w", "head.b")))
        json.add("generate", JsonParser.parseString("""{"request_schema": {"type": "object", "required": ["device_id", "items", "timestamps"],
            "properties": {"items": {"type": "array", "minItems": 1, "maxItems": 3, "items": {"type": "integer", "minimum": 1, "maximum": 9}}}}}"""))
        return json
    }

    fun recommendation(): Manifest = Manifest.parse(Gson().toJson(recommendationJson()))

    /** One tensor to write: raw little-endian bytes under a header entry. */
    class Tensor(val name: String, val dtype: String, val shape: List<Long>, val data: ByteArray)

    fun f32(name: String, shape: List<Long>, values: FloatArray): Tensor {
        val b = ByteBuffer.allocate(values.size * 4).order(ByteOrder.LITTLE_ENDIAN)
        for (v in values) b.putFloat(v)
        return Tensor(name, "F32", shape, b.array())
    }

    fun f16(name: String, shape: List<Long>, halves: IntArray): Tensor {
        val b = ByteBuffer.allocate(halves.size * 2).order(ByteOrder.LITTLE_ENDIAN)
        for (h in halves) b.putShort(h.toShort())
        return Tensor(name, "F16", shape, b.array())
    }

    /** A safetensors file of [tensors] in order, header space-padded to 8 bytes. */
    fun safetensors(tensors: List<Tensor>, metadata: Map<String, String>? = null): ByteArray {
        val header = JsonObject()
        if (metadata != null) header.add("__metadata__", Gson().toJsonTree(metadata))
        var offset = 0L
        for (t in tensors) {
            val entry = JsonObject()
            entry.addProperty("dtype", t.dtype)
            entry.add("shape", JsonArray().also { a -> t.shape.forEach { a.add(it) } })
            entry.add("data_offsets", JsonArray().also { it.add(offset); it.add(offset + t.data.size) })
            header.add(t.name, entry)
            offset += t.data.size
        }
        return raw(Gson().toJson(header), tensors.map { it.data })
    }

    /** A safetensors-like file with this exact [header] text (padded) and data. */
    fun raw(header: String, data: List<ByteArray>): ByteArray {
        var text = header.toByteArray(Charsets.UTF_8)
        val pad = (8 - text.size % 8) % 8
        text += ByteArray(pad) { 0x20 }
        val out = ByteBuffer.allocate(8 + text.size + data.fold(0) { n, d -> n + d.size }).order(ByteOrder.LITTLE_ENDIAN)
        out.putLong(text.size.toLong())
        out.put(text)
        for (d in data) out.put(d)
        return out.array()
    }

    val W = floatArrayOf(1f, 2f, 3f, 4f, 5f, 6f)
    val B = floatArrayOf(-1f, 0.5f, 0f)

    /** The `__metadata__` the service writes: the model version (signed with the blob) and the task. */
    val SERVICE_METADATA = mapOf("model_version" to MODEL_VERSION, "task" to "recommendation")

    /** A slot blob for the fixture manifest as the service writes it (with [SERVICE_METADATA]). */
    fun slotBlob(w: FloatArray, b: FloatArray, metadata: Map<String, String>? = SERVICE_METADATA): ByteArray =
        safetensors(listOf(f32("head.w", listOf(2, 3), w), f32("head.b", listOf(3), b)), metadata)

    /** A good slot blob for [manifest]: w = 1..6, b = (-1, 0.5, 0). */
    fun goodBlob(): ByteArray = slotBlob(W, B)

    /** A generate answer for [blob] with correct headers. */
    fun answer(blob: ByteArray, version: String = MODEL_VERSION): SlotAnswer =
        SlotAnswer(blob, Sha256.hex(blob), version, "float32")

    /** Run [action], assert it throws a [DuetException] of [reason] whose message holds every [fragments]. */
    fun refused(reason: Reason, vararg fragments: String, action: () -> Unit): DuetException {
        try {
            action()
        } catch (e: DuetException) {
            assertEquals("reason of: ${e.message}", reason, e.reason)
            for (f in fragments) assertTrue("'$f' not in: ${e.message}", (e.message ?: "").contains(f))
            return e
        }
        fail("expected a ${reason.id} refusal, nothing was thrown")
        throw AssertionError()
    }
}

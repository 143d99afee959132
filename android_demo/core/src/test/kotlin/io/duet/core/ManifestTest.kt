/** Manifest.parse: a valid manifest keeps every field; each violation of the contract is a "manifest" refusal naming it. */
package io.duet.core

import com.google.gson.Gson
import com.google.gson.JsonArray
import com.google.gson.JsonObject
import com.google.gson.JsonPrimitive
import io.duet.core.Fixtures.manifestJson
import io.duet.core.Fixtures.refused
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Test

class ManifestTest {
    private fun parse(edit: (JsonObject) -> Unit): Manifest {
        val json = manifestJson()
        edit(json)
        return Manifest.parse(Gson().toJson(json))
    }

    private fun bad(vararg fragments: String, edit: (JsonObject) -> Unit) {
        refused(Reason.MANIFEST, *fragments) { parse(edit) }
    }

    private fun JsonObject.slot(i: Int) = getAsJsonArray("slots")[i].asJsonObject
    private fun JsonObject.target(name: String) = getAsJsonObject("targets").getAsJsonObject(name)

    @Test
    fun keepsTheFields() {
        val m = Fixtures.manifest()
        assertEquals(1, m.formatVersion)
        assertEquals(Fixtures.MODEL_VERSION, m.modelVersion)
        assertEquals(listOf(TensorSpec("items", listOf(1, 4), "int32"), TensorSpec("mask", listOf(1, 4), "float32")), m.inputs)
        assertEquals(TensorSpec("scores", listOf(1, 10), "float32"), m.output)
        assertEquals(listOf(SlotSpec("head.w", listOf(2, 3), "float32", 0, 24), SlotSpec("head.b", listOf(3), "float32", 24, 12)), m.slots)
        assertEquals(36L, m.slotBlobBytes)
        assertEquals("int8", m.quantizationMode)
        assertEquals(listOf("executorch", "tflite", "coreml"), m.targets.keys.toList())
        val tflite = m.target("tflite")
        assertEquals(listOf("args_0", "args_1", "args_2", "args_3"), tflite.inputNames)
        assertEquals("output_0", tflite.outputName)
        assertEquals("file", tflite.servedAs)
        assertEquals("model.tflite", tflite.cachedFileName)
        assertNull(m.target("executorch").inputNames)
        assertEquals(listOf("link the quantized kernels"), m.target("executorch").notes)
        assertEquals("model.mlpackage.zip", m.target("coreml").cachedFileName)
    }

    @Test
    fun unknownTargetNamesTheOnesThereAre() {
        refused(Reason.MANIFEST, "no target 'onnx'", "executorch, tflite, coreml") { Fixtures.manifest().target("onnx") }
    }

    @Test
    fun notAJsonObject() {
        refused(Reason.MANIFEST, "not a JSON object") { Manifest.parse("[1]") }
        refused(Reason.MANIFEST, "not a JSON object") { Manifest.parse("{\"format_version\": 1") }
    }

    @Test
    fun formatVersion() {
        bad("understands manifest format 1", "found format_version 2") { it.addProperty("format_version", 2) }
        bad("'format_version' is missing") { it.remove("format_version") }
        bad("'format_version' should be an integer") { it.addProperty("format_version", "1") }
    }

    @Test
    fun requiredFieldsAndTypes() {
        for (key in listOf("model_version", "task", "inputs", "output", "slots", "slot_blob", "call_signature", "targets")) {
            bad("'$key' is missing") { it.remove(key) }
        }
        bad("'task' should be a string") { it.addProperty("task", 3) }
        bad("'inputs' should be an array") { it.addProperty("inputs", "items") }
        bad("'targets' should be an object") { it.add("targets", JsonArray()) }
        bad("'inputs' should not be empty") { it.add("inputs", JsonArray()) }
    }

    @Test
    fun modelVersionIs16LowercaseHex() {
        bad("model_version '0123456789ABCDEF'") { it.addProperty("model_version", "0123456789ABCDEF") }
        bad("16 lowercase hex") { it.addProperty("model_version", "0123") }
    }

    @Test
    fun tensorDtypesAndShapes() {
        bad("dtype 'int64' should be one of int32, float32") {
            it.getAsJsonArray("inputs")[0].asJsonObject.addProperty("dtype", "int64")
        }
        bad("dimensions should be at least 1") {
            it.getAsJsonObject("output").add("shape", JsonArray().also { a -> a.add(0) })
        }
    }

    @Test
    fun slotsAreFloat32AndContiguous() {
        bad("slot 'head.w' has dtype 'float16'; slots are float32") { it.slot(0).addProperty("dtype", "float16") }
        bad("slot 'head.b' should sit at byte 24 with 12 bytes, found offset 28") { it.slot(1).addProperty("offset", 28) }
        bad("slot 'head.w' should sit at byte 0 with 24 bytes, found offset 0 and 20 bytes") { it.slot(0).addProperty("nbytes", 20) }
        bad("slot_blob.nbytes is 40, the slots add up to 36") { it.getAsJsonObject("slot_blob").addProperty("nbytes", 40) }
    }

    @Test
    fun callSignatureIsInputsThenSlots() {
        bad("call_signature [head.w, items, mask, head.b] should be the inputs then the slots") {
            it.add("call_signature", Gson().toJsonTree(listOf("head.w", "items", "mask", "head.b")))
        }
        bad("names must be unique") {
            it.getAsJsonArray("inputs")[1].asJsonObject.addProperty("name", "items")
            it.add("call_signature", Gson().toJsonTree(listOf("items", "items", "head.w", "head.b")))
        }
    }

    @Test
    fun targetFileNamesAreNotPaths() {
        for (file in listOf("../model.pte", "a/b", ".", "..", "")) {
            bad("file '$file' is not a plain file name") { it.target("executorch").addProperty("file", file) }
        }
        parse { it.target("executorch").addProperty("file", "model-v1.2_b.pte") }
    }

    @Test
    fun targetShaBytesServedAsAndInputNames() {
        bad("sha256 '${"A".repeat(64)}' should be 64 lowercase hex") { it.target("tflite").addProperty("sha256", "A".repeat(64)) }
        bad("bytes should be at least 1, found 0") { it.target("tflite").addProperty("bytes", 0) }
        bad("served_as 'tar' should be one of file, zip") { it.target("tflite").addProperty("served_as", "tar") }
        bad("input_names has 3 names for the 4 arguments") {
            it.target("tflite").add("input_names", Gson().toJsonTree(listOf("args_0", "args_1", "args_2")))
        }
        bad("target name 'Bad-Name'") { it.getAsJsonObject("targets").add("Bad-Name", it.target("tflite")) }
        bad("'runtime' is missing") { it.target("tflite").remove("runtime") }
    }

    @Test
    fun quantizationModeIsRequired() {
        bad("'quantization' is missing") { it.remove("quantization") }
        bad("manifest/quantization: required field 'mode' is missing") {
            it.add("quantization", JsonObject().also { q -> q.add("scope", JsonPrimitive("x")) })
        }
        bad("mode 'int4' should be one of none, int8") { it.getAsJsonObject("quantization").addProperty("mode", "int4") }
        bad("'quantization' should be an object") { it.addProperty("quantization", "int8") }
        assertEquals("none", parse { it.getAsJsonObject("quantization").addProperty("mode", "none") }.quantizationMode)
    }

    @Test
    fun inputsAndOutputNeedADescription() {
        bad("manifest/inputs[0]: required field 'description' is missing") {
            it.getAsJsonArray("inputs")[0].asJsonObject.remove("description")
        }
        bad("'description' should be a string") { it.getAsJsonObject("output").addProperty("description", 3) }
    }

    @Test
    fun namesFollowTheSchemaPattern() {
        bad("name '1st' should match") {
            it.getAsJsonArray("inputs")[0].asJsonObject.addProperty("name", "1st")
            it.add("call_signature", Gson().toJsonTree(listOf("1st", "mask", "head.w", "head.b")))
        }
        bad("name 'head-w' should match") {
            it.slot(0).addProperty("name", "head-w")
            it.add("call_signature", Gson().toJsonTree(listOf("items", "mask", "head-w", "head.b")))
        }
        bad("name 'the scores' should match") { it.getAsJsonObject("output").addProperty("name", "the scores") }
        parse {
            it.slot(0).addProperty("name", "_blocks.0.W_q")
            it.add("call_signature", Gson().toJsonTree(listOf("items", "mask", "_blocks.0.W_q", "head.b")))
        }
    }

    @Test
    fun duplicateKeysAreRefused() {
        val text = Gson().toJson(manifestJson()).replaceFirst("{", "{\"task\": \"other\", ")
        refused(Reason.MANIFEST, "names 'task' twice") { Manifest.parse(text) }
    }
}

/** BenchmarkRun beyond the golden scenarios, the benchmark's options, inputs, offline model_dir and the whole run. */
package io.duet.core

import com.google.gson.Gson
import io.duet.core.Fixtures.goodBlob
import io.duet.core.Fixtures.refused
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Test
import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.file.Files

/** A stand-in runtime: counts forward calls, keeps the slot bytes of the last call, can fail its forward calls. */
class CountingProgram(var threads: Int, private val failForward: Boolean = false) : BenchmarkProgram {
    var forwards = 0
    var lastSlots = ByteArray(0)
    var closed = false

    override val settings: List<Pair<String, Double>> get() = listOf(Pair(Metrics.NUM_THREADS, threads.toDouble()))

    override fun prepare(args: List<CallArgument>): PreparedCall {
        val slots = args.filter { it.data.dtype == "float32" && it.name.contains('.') }
        val buffer = ByteBuffer.allocate(4 * slots.sumBy { it.data.numel.toInt() }).order(ByteOrder.LITTLE_ENDIAN)
        for (s in slots) for (x in s.data.floatValues()) buffer.putFloat(x)
        return object : PreparedCall {
            override fun run(): FloatArray {
                if (failForward) throw IllegalStateException("the runtime failed to execute forward")
                forwards += 1
                lastSlots = buffer.array()
                return FloatArray(0)
            }
        }
    }

    override fun close() {
        closed = true
    }
}

class BenchmarkSamplingTest {
    private val device = DeviceInfo.android("google", "Pixel 8", "15", 8L, 3L)

    @Test
    fun optionsFromIntentExtrasWithMinibenchsDefaults() {
        assertEquals(BenchmarkOptions("/data/local/tmp/duet", 50, 10, 1, null, null, null), BenchmarkOptions.fromExtras(emptyMap()))
        assertEquals(BenchmarkOptions("/sdcard/m", 5, 0, 4, "tflite", "http://h:1", "k"), BenchmarkOptions.fromExtras(mapOf(
            "model_dir" to "/sdcard/m", "num_iter" to 5, "num_warm_up_iter" to 0, "num_threads" to 4, "target" to "tflite",
            "server_url" to "http://h:1", "api_key" to "k", "unrelated" to 3.5)))
    }

    @Test
    fun badOptionsSayWhichAndHow() {
        fun bad(vararg pairs: Pair<String, Any?>): String = try {
            BenchmarkOptions.fromExtras(mapOf(*pairs))
            "accepted"
        } catch (e: OptionsException) {
            e.message ?: ""
        }
        assertEquals("num_iter must be from 1 to 100000, got 0", bad("num_iter" to 0))
        assertEquals("num_warm_up_iter must be from 0 to 100000, got -1", bad("num_warm_up_iter" to -1))
        assertEquals("num_threads must be from 1 to 64, got 0", bad("num_threads" to 0))
        assertEquals("num_iter must be a whole number (adb: --ei num_iter N), got String 50", bad("num_iter" to "50"))
        assertEquals("target must be text (adb: --es target ...), got Integer 1", bad("target" to 1))
        assertEquals("server_url needs api_key in the same intent (a URL from an intent never gets a stored or built-in key)",
            bad("server_url" to "http://evil.example:80"))
    }

    @Test
    fun aForwardThatFailsIsAFailureRecordAndTheSwapIsSkipped() {
        val manifest = Fixtures.manifest()
        val base = SlotBlob.decode(goodBlob(), manifest)
        val program = CountingProgram(2, failForward = true)
        val host = object : BenchmarkHost {
            override fun load(): BenchmarkProgram = program
            override fun memoryMb(): Double = 10.0
            override val canGenerate = false
            override fun generate(): SlotAnswer = throw AssertionError("offline")
            override fun swapAnswer(): SlotAnswer = throw AssertionError("no swap after a failed forward")
        }
        val run = BenchmarkRun(manifest, null, base, BenchmarkInputs.of(manifest, null), 1, 3, MemoryMetrics.PSS)
        val records = run.run(host, BenchmarkModel("model", "xnnpack", "int8"), device)
        assertEquals(listOf(Metrics.MODEL_LOAD, Metrics.LOAD_STATUS, Metrics.RAM_PSS, Metrics.RAM_PSS_PEAK, Metrics.NUM_THREADS,
            Metrics.BENCHMARK_FAILED), records.map { it.metric })
        assertEquals("forward: the runtime failed to execute forward", records.last().error)
        assertTrue(program.closed)
    }

    @Test
    fun aLoadWithoutARuntimeCodeHasStatusMinusOne() {
        val manifest = Fixtures.manifest()
        val host = object : BenchmarkHost {
            override fun load(): BenchmarkProgram = throw IllegalStateException("no such file")
            override fun memoryMb(): Double = 10.0
            override val canGenerate = false
            override fun generate(): SlotAnswer = throw AssertionError()
            override fun swapAnswer(): SlotAnswer = throw AssertionError()
        }
        val run = BenchmarkRun(manifest, null, SlotBlob.decode(goodBlob(), manifest), BenchmarkInputs.of(manifest, null), 0, 1, MemoryMetrics.PSS)
        val records = run.run(host, BenchmarkModel("m", "litert", "none"), device)
        assertEquals(listOf(Metrics.MODEL_LOAD, Metrics.LOAD_STATUS, Metrics.BENCHMARK_FAILED), records.map { it.metric })
        assertEquals(-1.0, records[1].actualValue, 0.0) // minibench's code for a failure that carries none
        assertEquals("load: no such file", records[2].error)
    }

    @Test
    fun inputsTakeTheHistoryFromTheBody() {
        val rec = Fixtures.recommendation()
        val body = BenchmarkInputs.defaultBody(rec, 1000)!!
        assertEquals("{\"device_id\":\"benchmark\",\"items\":[2,3,4],\"timestamps\":[880,940,1000]}", body.toJson())
        val inputs = BenchmarkInputs.of(rec, body)
        assertArrayEquals(intArrayOf(0, 2, 3, 4), inputs.getValue("history").intValues())
        assertArrayEquals(intArrayOf(1, 2, 3), inputs.getValue("candidates").intValues())
        assertArrayEquals(intArrayOf(1, 2, 3, 4), BenchmarkInputs.of(rec, null).getValue("history").intValues())
        assertNull(BenchmarkInputs.defaultBody(Fixtures.manifest(), 1000)) // not a recommendation program
        assertEquals(setOf("items", "mask"), BenchmarkInputs.of(Fixtures.manifest(), null).keys)
    }

    private fun modelDir(): File {
        val dir = Files.createTempDirectory("model-dir").toFile()
        File(dir, ModelDir.MANIFEST).writeText(Gson().toJson(Fixtures.recommendationJson()))
        File(dir, ModelDir.BASE).writeBytes(goodBlob())
        File(dir, "model.tflite").writeText("a program")
        return dir
    }

    @Test
    fun anOfflineModelDir() {
        val dir = modelDir()
        try {
            val models = ModelDir(dir)
            val base = SlotBlob.decode(goodBlob(), models.manifest)
            assertEquals("tflite", models.target(null, listOf("executorch", "tflite")).name)
            assertEquals("executorch", models.target("executorch", listOf("executorch", "tflite")).name)
            assertEquals(File(dir, "model.tflite"), models.programFile(models.target(null, listOf("tflite"))))
            refused(Reason.MANIFEST, "none of the targets executorch") { models.target(null, listOf("executorch")) }
            assertEquals(base, models.baseAnswer().check(models.manifest))
            assertEquals("{\"device_id\":\"benchmark\",\"items\":[2,3,4],\"timestamps\":[880,940,1000]}", models.body(1000)!!.toJson())
            File(dir, ModelDir.REQUEST).writeText("{\"device_id\":\"x\",\"items\":[7]}")
            assertEquals("{\"device_id\":\"x\",\"items\":[7]}", models.body(1000)!!.toJson())
            File(dir, ModelDir.BASE).delete()
            refused(Reason.MANIFEST, "base.safetensors") { models.baseAnswer() }
            assertFalse(File(dir, "missing").isDirectory)
            refused(Reason.MANIFEST, "manifest.json") { ModelDir(File(dir, "missing")) }
        } finally {
            dir.deleteRecursively()
        }
    }

    @Test
    fun theWholeRunOfflineAndEveryWayItFailsIsARecord() {
        val dir = modelDir()
        try {
            val program = CountingProgram(1)
            val loader = { source: BenchmarkSource, threads: Int ->
                assertEquals("tflite", source.target.name)
                program.also { it.threads = threads }
            }
            fun run(extras: Map<String, Any?>, pinned: String? = null) = Benchmarks.run(extras, dir, listOf("executorch", "tflite"),
                device, loader, { 50.0 }, MemoryMetrics.PSS, pinned)
            val records = run(mapOf("model_dir" to dir.path, "num_iter" to 3, "num_warm_up_iter" to 1, "num_threads" to 2))
            assertEquals(listOf(Metrics.AVG, Metrics.TRIMMEAN, Metrics.P50, Metrics.P90, Metrics.P99, Metrics.MODEL_LOAD,
                Metrics.LOAD_STATUS, Metrics.RAM_PSS, Metrics.RAM_PSS_PEAK, Metrics.SLOT_SWAP, Metrics.NUM_THREADS),
                records.map { it.metric }) // offline: no generate round trip
            assertEquals(BenchmarkModel("model", "litert", "int8"), records[0].model)
            assertEquals(2.0, records.last().actualValue, 0.0)
            assertEquals(1 + 3 + 6, program.forwards)
            assertArrayEquals(SlotBlob.decode(goodBlob(), Fixtures.recommendation()).toFlatBytes(), program.lastSlots)

            val options = run(mapOf("model_dir" to dir.path, "num_iter" to 0))
            assertEquals(listOf(Metrics.BENCHMARK_FAILED), options.map { it.metric })
            assertEquals("options: num_iter must be from 1 to 100000, got 0", options[0].error)
            assertEquals(Benchmarks.UNKNOWN_MODEL, options[0].model)
            val missing = run(mapOf("model_dir" to File(dir, "nothing").path))
            assertTrue(missing[0].error, missing[0].error.startsWith("setup: manifest: ") && missing[0].error.contains("manifest.json"))
            val pinned = run(mapOf("model_dir" to dir.path), pinned = "A".repeat(59) + "=")
            assertTrue(pinned[0].error, pinned[0].error.startsWith("setup: manifest: the manifest carries no signing key"))
        } finally {
            dir.deleteRecursively()
        }
    }
}

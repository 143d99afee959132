/** BenchmarkSampling (the sampling rules of every metric), BenchmarkInputs and the offline ModelDir. */
package io.duet.core

import com.google.gson.Gson
import io.duet.core.Fixtures.answer
import io.duet.core.Fixtures.f32
import io.duet.core.Fixtures.goodBlob
import io.duet.core.Fixtures.refused
import io.duet.core.Fixtures.safetensors
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Test
import java.io.File
import java.nio.file.Files

class BenchmarkSamplingTest {
    private val manifest = Fixtures.manifest()
    private val base = SlotBlob.decode(goodBlob(), manifest)
    private val otherBlob = safetensors(listOf(f32("head.w", listOf(2, 3), FloatArray(6) { it * 0.5f }), f32("head.b", listOf(3), Fixtures.B)))

    @Test
    fun forwardLatencyTimesIterationsAfterUntimedWarmUps() {
        var calls = 0
        val samples = BenchmarkSampling.forwardLatency(3, 7) { calls += 1 }
        assertEquals(10, calls)
        assertEquals(7, samples.size)
        assertTrue(samples.all { it >= 0.0 && !it.isInfinite() })
    }

    @Test
    fun slotSwapInstallsThenRunsTheFirstForwardSixTimes() {
        val device = DeviceSlots(manifest, base)
        val seen = ArrayList<SlotSet>()
        val p50 = BenchmarkSampling.slotSwapLatency(device, answer(otherBlob)) { slots -> seen.add(slots) }
        assertEquals(BenchmarkSampling.SWAP_WARM_UP + BenchmarkSampling.SWAP_TIMED, seen.size)
        assertEquals(6, seen.size)
        val installed = SlotBlob.decode(otherBlob, manifest)
        assertTrue(seen.all { it == installed })
        assertEquals(installed, device.current)
        assertTrue(p50 >= 0.0 && !p50.isInfinite())
    }

    @Test
    fun slotSwapOfARefusedAnswerThrowsAndRunsNothing() {
        val device = DeviceSlots(manifest, base)
        var forwards = 0
        refused(Reason.MANIFEST, "model version") {
            BenchmarkSampling.slotSwapLatency(device, answer(otherBlob, "ffffffffffffffff")) { forwards += 1 }
        }
        assertEquals(0, forwards)
        assertTrue(device.usingBase)
    }

    @Test
    fun generateRoundTripChecksSixAnswersAndInstallsNothing() {
        var posts = 0
        val p50 = BenchmarkSampling.generateRoundTrip(manifest) {
            posts += 1
            answer(otherBlob)
        }
        assertEquals(BenchmarkSampling.ROUND_TRIP_WARM_UP + BenchmarkSampling.ROUND_TRIP_TIMED, posts)
        assertTrue(p50 >= 0.0 && !p50.isInfinite())
        val corrupt = otherBlob.copyOf().also { it[it.size - 1] = (it[it.size - 1].toInt() xor 1).toByte() }
        refused(Reason.BLOB, "corrupted in transit") {
            BenchmarkSampling.generateRoundTrip(manifest) { answer(otherBlob).withBlob(corrupt) }
        }
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
        assertNull(BenchmarkInputs.defaultBody(manifest, 1000)) // not a recommendation program
        assertEquals(setOf("items", "mask"), BenchmarkInputs.of(manifest, null).keys)
    }

    @Test
    fun anOfflineModelDir() {
        val dir = Files.createTempDirectory("model-dir").toFile()
        try {
            File(dir, ModelDir.MANIFEST).writeText(Gson().toJson(Fixtures.recommendationJson()))
            File(dir, ModelDir.BASE).writeBytes(goodBlob())
            File(dir, "model.tflite").writeText("a program")
            val models = ModelDir(dir)
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
}

/** SlotBlob.decode and SlotAnswer.check: the slot check against the manifest, the digest and the model version. */
package io.duet.core

import io.duet.core.Fixtures.B
import io.duet.core.Fixtures.W
import io.duet.core.Fixtures.answer
import io.duet.core.Fixtures.f16
import io.duet.core.Fixtures.f32
import io.duet.core.Fixtures.goodBlob
import io.duet.core.Fixtures.refused
import io.duet.core.Fixtures.safetensors
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNotEquals
import org.junit.Test
import java.nio.ByteBuffer
import java.nio.ByteOrder

class SlotBlobTest {
    private val manifest = Fixtures.manifest()

    @Test
    fun goodBlobDecodesToFlatBytesInManifestOrder() {
        // written b first: the SlotSet is still in manifest order (w, b)
        val blob = safetensors(listOf(f32("head.b", listOf(3), B), f32("head.w", listOf(2, 3), W)))
        val slots = SlotBlob.decode(blob, manifest)
        assertEquals(listOf("head.w", "head.b"), slots.names)
        val expected = ByteBuffer.allocate(36).order(ByteOrder.LITTLE_ENDIAN)
        for (v in W + B) expected.putFloat(v)
        assertArrayEquals(expected.array(), slots.toFlatBytes())
        assertEquals(slots, SlotSet.fromFlatBytes(manifest.slots, expected.array()))
    }

    @Test
    fun float16SlotsConvertExactly() {
        val blob = safetensors(listOf(f16("head.w", listOf(2, 3), intArrayOf(0x3c00, 0x4000, 0x4200, 0x4400, 0x4500, 0x4600)),
            f16("head.b", listOf(3), intArrayOf(0xbc00, 0x3800, 0x0000))))
        assertEquals(SlotBlob.decode(goodBlob(), manifest), SlotBlob.decode(blob, manifest))
    }

    @Test
    fun missingAndUnexpectedSlotsAreListed() {
        val blob = safetensors(listOf(f32("head.w", listOf(2, 3), W), f32("extra", listOf(3), B)))
        refused(Reason.SLOT_SHAPE, "missing [head.b]", "unexpected [extra]") { SlotBlob.decode(blob, manifest) }
    }

    @Test
    fun wrongShape() {
        val blob = safetensors(listOf(f32("head.w", listOf(3, 2), W), f32("head.b", listOf(3), B)))
        refused(Reason.SLOT_SHAPE, "slot 'head.w' should have shape [2, 3], got [3, 2]") { SlotBlob.decode(blob, manifest) }
    }

    @Test
    fun nanAndInfinityAreRefused() {
        for (bad in listOf(Float.NaN, Float.POSITIVE_INFINITY)) {
            val blob = safetensors(listOf(f32("head.w", listOf(2, 3), W), f32("head.b", listOf(3), floatArrayOf(0f, bad, 1f))))
            refused(Reason.SLOT_SHAPE, "slot 'head.b' holds NaN or infinite values") { SlotBlob.decode(blob, manifest) }
        }
        val halfInf = safetensors(listOf(f16("head.w", listOf(2, 3), IntArray(6) { 0x7c00 }), f32("head.b", listOf(3), B)))
        refused(Reason.SLOT_SHAPE, "NaN or infinite") { SlotBlob.decode(halfInf, manifest) }
    }

    @Test
    fun answerDigestMustMatchItsHeader() {
        val blob = goodBlob()
        val flipped = blob.copyOf().also { it[it.size - 1] = (it[it.size - 1].toInt() xor 1).toByte() }
        refused(Reason.BLOB, "corrupted in transit") { answer(blob).withBlob(flipped).check(manifest) }
        refused(Reason.BLOB, "announced none") { SlotAnswer(blob, "", Fixtures.MODEL_VERSION).check(manifest) }
    }

    @Test
    fun answerFromAnotherModelVersion() {
        refused(Reason.MANIFEST, "model version ffffffffffffffff", Fixtures.MODEL_VERSION) {
            answer(goodBlob(), "ffffffffffffffff").check(manifest)
        }
    }

    @Test
    fun slotSetsAreValuesAndHandOutCopies() {
        val slots = answer(goodBlob()).check(manifest)
        slots.floats("head.w")[0] = 99f
        assertEquals(1f, slots.floats(0)[0], 0f)
        assertNotEquals(slots, SlotSet.of(manifest.slots, mapOf("head.w" to W, "head.b" to floatArrayOf(0f, 0f, 0f))))
        refused(Reason.SLOT_SHAPE, "should hold 3 values") {
            SlotSet.of(manifest.slots, mapOf("head.w" to W, "head.b" to floatArrayOf(0f)))
        }
    }
}

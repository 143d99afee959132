/** DeviceSlots: the fallback rule — on any refusal the last good slots stay (Base's if none), and lastRefusal says why. */
package io.duet.core

import io.duet.core.Fixtures.B
import io.duet.core.Fixtures.W
import io.duet.core.Fixtures.answer
import io.duet.core.Fixtures.f32
import io.duet.core.Fixtures.goodBlob
import io.duet.core.Fixtures.refused
import io.duet.core.Fixtures.safetensors
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Test

class DeviceSlotsTest {
    private val manifest = Fixtures.manifest()
    private val base = SlotBlob.decode(goodBlob(), manifest)
    private val otherBlob = safetensors(listOf(f32("head.w", listOf(2, 3), FloatArray(6) { it * 0.5f }), f32("head.b", listOf(3), B)))

    @Test
    fun startsOnBaseAndInstallsGoodAnswers() {
        val device = DeviceSlots(manifest, base)
        assertTrue(device.usingBase)
        assertEquals(base, device.current)
        val installed = device.install(answer(otherBlob))
        assertFalse(device.usingBase)
        assertEquals(installed, device.current)
        assertEquals(SlotBlob.decode(otherBlob, manifest), device.current)
        assertNull(device.lastRefusal)
    }

    @Test
    fun refusedAnswersKeepBaseWhenNothingWasInstalled() {
        val device = DeviceSlots(manifest, base)
        val bad = safetensors(listOf(f32("head.w", listOf(2, 3), W)))
        refused(Reason.SLOT_SHAPE, "missing [head.b]") { device.install(answer(bad)) }
        assertEquals(base, device.current)
        assertTrue(device.usingBase)
        assertEquals(Reason.SLOT_SHAPE, device.lastRefusal!!.reason)
        assertTrue(device.lastRefusal!!.message.contains("missing [head.b]"))
    }

    @Test
    fun refusedAnswersKeepTheLastGoodSlots() {
        val device = DeviceSlots(manifest, base)
        val good = device.install(answer(otherBlob))
        val corrupt = otherBlob.copyOf().also { it[it.size - 2] = (it[it.size - 2].toInt() xor 0x40).toByte() }
        refused(Reason.BLOB, "corrupted in transit") { device.install(answer(otherBlob).withBlob(corrupt)) }
        assertEquals(good, device.current)
        assertEquals(Reason.BLOB, device.lastRefusal!!.reason)
        refused(Reason.MANIFEST, "model version") { device.install(answer(goodBlob(), "ffffffffffffffff")) }
        assertEquals(good, device.current)
        assertEquals(Reason.MANIFEST, device.lastRefusal!!.reason)
        device.install(answer(goodBlob()))
        assertNull(device.lastRefusal)
        assertEquals(base, device.current)
    }

    @Test
    fun aRefusalThatBeganBeforeALaterSuccessDoesNotOverwriteIt() {
        val device = DeviceSlots(manifest, base)
        val slow = device.ticket() // a refresh begins ...
        val good = device.install(answer(otherBlob)) // ... another one succeeds meanwhile ...
        val (why, kept) = device.refused(DuetException(Reason.SERVICE, "no answer", 0), slow) // ... then the first fails
        assertEquals(Reason.SERVICE, why.reason)
        assertEquals(good, kept)
        assertNull(device.lastRefusal)
        assertEquals(good, device.current)
        // a refusal that began after the last success is recorded
        device.refused(DuetException(Reason.SERVICE, "no answer", 0), device.ticket())
        assertEquals(Reason.SERVICE, device.lastRefusal!!.reason)
        assertEquals(good, device.current)
    }

    @Test
    fun refreshNeverThrowsAndSaysWhichSlotsStay() {
        // neither the live service nor the stand-in can be reached through a file: URL: the refusal is a service
        // error with status 0 (not a ClassCastException), and refresh reports it instead of throwing
        val device = DeviceSlots(manifest, base)
        val good = device.install(answer(otherBlob))
        val outcome = device.refresh(ServiceClient("file:///tmp", "k"), RequestBody.Builder().text("device_id", "d").build())
        assertFalse(outcome.installed)
        assertEquals(good, outcome.current)
        val why = outcome.refusal!!
        assertEquals(Reason.SERVICE, why.reason)
        assertEquals(0, why.status)
        assertEquals(why, device.lastRefusal)
    }

    @Test
    fun flatBytesOfTheWrongSizeAreASlotShapeError() {
        refused(Reason.SLOT_SHAPE, "35 bytes, the slots take 36") { SlotSet.fromFlatBytes(manifest.slots, ByteArray(35)) }
    }

    @Test
    fun baseMustBeTheManifestsSlots() {
        val other = SlotSet.of(listOf(SlotSpec("x", listOf(1), "float32", 0, 4)), mapOf("x" to floatArrayOf(1f)))
        refused(Reason.SLOT_SHAPE, "not the manifest's slots") { DeviceSlots(manifest, other) }
    }
}

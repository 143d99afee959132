/** Live tests against a real `cli.py serve` started by tests/live_service.py; Python's client gives the reference bytes. */
package io.duet.core

import com.google.gson.JsonObject
import com.google.gson.JsonParser
import org.junit.AfterClass
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Assume.assumeTrue
import org.junit.BeforeClass
import org.junit.Test
import java.io.File
import java.nio.file.Files

class LiveServiceTest {
    companion object {
        private var dir: File? = null
        private lateinit var live: JsonObject
        private lateinit var cacheDir: File

        @BeforeClass
        @JvmStatic
        fun findTheLiveService() {
            val path = System.getenv("DUET_LIVE_DIR")?.takeIf { it != "" }
            if (path == null) {
                val why = "DUET_LIVE_DIR is not set: the live tests need `make android-core-test` " +
                    "(tests/live_service.py starts cli.py serve)"
                if (System.getenv("DUET_REQUIRE_LIVE") == "1") fail("DUET_REQUIRE_LIVE=1 but $why")
                System.err.println("LiveServiceTest skipped: $why")
                assumeTrue(why, false)
            }
            dir = File(path!!)
            live = JsonParser.parseString(File(dir, "live.json").readText()).asJsonObject
            cacheDir = Files.createTempDirectory("duet-live-cache").toFile()
        }

        @AfterClass
        @JvmStatic
        fun removeTheCache() {
            if (dir != null) cacheDir.deleteRecursively()
        }
    }

    private val url get() = live.get("url").asString
    private val service get() = ServiceClient(url, live.get("api_key").asString)
    private val target get() = live.get("target").asString

    private fun flat(entry: JsonObject): ByteArray = File(dir, entry.get("flat").asString).readBytes()
    private fun device(i: Int): JsonObject = live.getAsJsonArray("devices")[i].asJsonObject
    private fun body(i: Int): RequestBody = RequestBody.fromJson(device(i).getAsJsonObject("body"))

    @Test
    fun manifestAndTheCachedDownload() {
        val client = service
        val manifest = client.manifest()
        live.get("model_version")?.let { assertEquals(it.asString, manifest.modelVersion) }
        val first = client.download(manifest, target, cacheDir)
        assertTrue(first.fetched)
        assertEquals(manifest.target(target).sha256, Sha256.hex(first.file))
        assertEquals(File(File(cacheDir, manifest.target(target).sha256), manifest.target(target).cachedFileName), first.file)
        val sent = client.requestsSent
        val second = client.download(manifest, target, cacheDir)
        assertFalse("the second download is served from the cache", second.fetched)
        assertEquals(sent, client.requestsSent)
    }

    @Test
    fun baseSlotsAreThePythonClients() {
        val client = service
        val manifest = client.manifest()
        val answer = client.baseSlots()
        assertEquals(live.getAsJsonObject("base").get("blob_sha256").asString, answer.sha256)
        assertArrayEquals(flat(live.getAsJsonObject("base")), answer.check(manifest).toFlatBytes())
        assertArrayEquals(flat(live.getAsJsonObject("base")), DeviceSlots.load(client, manifest).current.toFlatBytes())
    }

    @Test
    fun generatedSlotsAreThePythonClientsForJsonAndBinaryBodies() {
        val client = service
        val manifest = client.manifest()
        val zero = client.generate(body(0))
        val one = client.generate(body(1), binary = true)
        assertEquals(device(0).get("blob_sha256").asString, zero.sha256)
        assertEquals(device(1).get("blob_sha256").asString, one.sha256)
        assertEquals("float32", zero.slotDtype)
        assertArrayEquals(flat(device(0)), zero.check(manifest).toFlatBytes())
        assertArrayEquals(flat(device(1)), one.check(manifest).toFlatBytes())
        assertFalse("the two devices' slots differ", flat(device(0)).contentEquals(flat(device(1))))
        // the binary body of device 0 gets the same answer as its JSON body
        assertEquals(zero.sha256, client.generate(body(0), binary = true).sha256)
    }

    @Test
    fun float16AnswerIsCloseToFloat32() {
        val client = service
        val manifest = client.manifest()
        val half = client.generate(body(0), SlotDtype.FLOAT16)
        assertEquals("float16", half.slotDtype)
        val f16 = half.check(manifest)
        val f32 = SlotSet.fromFlatBytes(manifest.slots, flat(device(0)))
        for (i in manifest.slots.indices) {
            val a = f16.floats(i)
            val b = f32.floats(i)
            for (k in a.indices) {
                val tolerance = 1e-2 * Math.abs(b[k]) + 1e-6 // relative, with a floor for values near zero
                assertTrue("${manifest.slots[i].name}[$k]: ${a[k]} vs ${b[k]}", Math.abs(a[k] - b[k]) <= tolerance)
            }
        }
    }

    @Test
    fun wrongKeyKeepsTheLastGoodSlots() {
        val manifest = service.manifest()
        val device = DeviceSlots.load(service, manifest)
        val ok = device.refresh(service, body(0))
        assertTrue("refused: ${ok.refusal}", ok.installed)
        val good = device.current
        val refused = device.refresh(ServiceClient(url, live.get("wrong_key").asString), body(1))
        assertFalse(refused.installed)
        assertEquals(good, device.current)
        assertArrayEquals(flat(device(0)), device.current.toFlatBytes())
        val why = device.lastRefusal
        assertNotNull(why)
        assertEquals(Reason.SERVICE, why!!.reason)
        assertEquals(401, why.status)
        assertTrue(why.message, why.message.contains("401"))
    }

    @Test
    fun corruptBlobIsRefusedAndTheLastGoodSlotsStay() {
        val client = service
        val manifest = client.manifest()
        val device = DeviceSlots.load(client, manifest)
        device.install(client.generate(body(0)))
        val good = device.current
        val answer = client.generate(body(1))
        val corrupt = answer.blob.copyOf()
        corrupt[corrupt.size - 3] = (corrupt[corrupt.size - 3].toInt() xor 0x01).toByte() // one data byte
        try {
            device.install(answer.withBlob(corrupt))
            fail("a corrupt blob was installed")
        } catch (e: DuetException) {
            assertEquals(Reason.BLOB, e.reason)
            assertTrue(e.message, e.message!!.contains("corrupted in transit"))
        }
        assertEquals(good, device.current)
        assertEquals(Reason.BLOB, device.lastRefusal!!.reason)
    }
}

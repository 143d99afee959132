/** Live tests against a real `cli.py serve` started by tests/live_service.py; Python's client gives the reference bytes. */
package io.duet.core

import io.duet.core.Live.body
import io.duet.core.Live.device
import io.duet.core.Live.flat
import org.junit.AfterClass
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNotEquals
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.BeforeClass
import org.junit.Test
import java.io.File

class LiveServiceTest {
    companion object {
        private val dirs = ArrayList<File>()

        @BeforeClass
        @JvmStatic
        fun findTheLiveService() {
            Live.json()
        }

        @AfterClass
        @JvmStatic
        fun removeTheCaches() {
            for (dir in dirs) dir.deleteRecursively()
        }

        fun cache(): File = Live.tempDir("duet-live-cache").also { dirs.add(it) }
    }

    private val base get() = Live.json().getAsJsonObject("base")

    @Test
    fun manifestAndTheCachedDownload() {
        val client = Live.service()
        val manifest = client.manifest()
        assertEquals(Live.modelVersion, manifest.modelVersion)
        val target = manifest.target(Live.target)
        val cacheDir = cache()
        // a stale file where the program belongs is fetched again
        val path = ArtifactCache(cacheDir).pathOf(target)
        path.parentFile.mkdirs()
        path.writeText("stale")
        val first = client.download(manifest, Live.target, cacheDir)
        assertTrue(first.fetched)
        assertEquals(File(File(cacheDir, target.sha256), target.cachedFileName), first.file)
        assertEquals(target.sha256, Sha256.hex(first.file))
        assertEquals(target.bytes, first.file.length())
        assertEquals(listOf(first.file), Live.filesIn(cacheDir)) // no temp file left
        val sent = client.requestsSent
        val second = client.download(manifest, Live.target, cacheDir)
        assertFalse("the second download is served from the cache", second.fetched)
        assertEquals(first.file, second.file)
        assertEquals(sent, client.requestsSent)
    }

    @Test
    fun baseSlotsAreThePythonClients() {
        val client = Live.service()
        val manifest = client.manifest()
        val answer = client.baseSlots()
        assertEquals(manifest.modelVersion, answer.modelVersion)
        assertEquals("float32", answer.slotDtype)
        assertEquals(base.get("blob_sha256").asString, answer.sha256)
        assertArrayEquals(flat(base), answer.check(manifest).toFlatBytes())
        assertArrayEquals(flat(base), DeviceSlots.load(client, manifest).current.toFlatBytes())
    }

    @Test
    fun generatedSlotsAreThePythonClientsForJsonAndBinaryBodies() {
        val client = Live.service()
        val manifest = client.manifest()
        val zero = client.generate(body(0))
        val one = client.generate(body(1), binary = true)
        for (answer in listOf(zero, one)) {
            assertEquals(manifest.modelVersion, answer.modelVersion)
            assertEquals("float32", answer.slotDtype)
        }
        assertEquals(device(0).get("blob_sha256").asString, zero.sha256)
        assertEquals(device(1).get("blob_sha256").asString, one.sha256)
        val zeroSlots = zero.check(manifest)
        val oneSlots = one.check(manifest)
        assertArrayEquals(flat(device(0)), zeroSlots.toFlatBytes())
        assertArrayEquals(flat(device(1)), oneSlots.toFlatBytes())
        assertNotEquals("the two devices' decoded slots differ", zeroSlots, oneSlots)
        // the binary body of device 0 gets the same answer as its JSON body
        assertEquals(zero.sha256, client.generate(body(0), binary = true).sha256)
    }

    @Test
    fun float16AnswerIsCloseToFloat32() {
        val client = Live.service()
        val manifest = client.manifest()
        val half = client.generate(body(0), SlotDtype.FLOAT16)
        assertEquals("float16", half.slotDtype)
        assertEquals(manifest.modelVersion, half.modelVersion)
        val f16 = half.check(manifest)
        val f32 = client.generate(body(0)).check(manifest)
        assertArrayEquals(flat(device(0)), f32.toFlatBytes())
        for (i in manifest.slots.indices) {
            val a = f16.floats(i)
            val b = f32.floats(i)
            for (k in a.indices) {
                val tolerance = 1e-2 * Math.abs(b[k]) + 1e-6 // relative, with a floor for values near zero
                assertTrue("${manifest.slots[i].name}[$k]: ${a[k]} vs ${b[k]}", Math.abs(a[k] - b[k]) <= tolerance)
            }
        }
        val halfBase = client.baseSlots(SlotDtype.FLOAT16)
        assertEquals("float16", halfBase.slotDtype)
        halfBase.check(manifest)
    }

    @Test
    fun wrongKeyKeepsTheLastGoodSlots() {
        val service = Live.service()
        val manifest = service.manifest()
        val device = DeviceSlots.load(service, manifest)
        val ok = device.refresh(service, body(0))
        assertTrue("refused: ${ok.refusal}", ok.installed)
        assertArrayEquals(flat(device(0)), ok.current.toFlatBytes())
        val good = device.current
        val refused = device.refresh(ServiceClient(Live.url, Live.json().get("wrong_key").asString), body(1))
        assertFalse(refused.installed)
        assertEquals(good, refused.current)
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
        val client = Live.service()
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

    @Test
    fun deviceClientSetsUpLikeThePythonClient() {
        val cacheDir = cache()
        val device = DeviceClient(Live.service(), Live.target, cacheDir)
        assertFalse(device.isSetUp)
        val file = device.setup()
        assertEquals(Live.modelVersion, device.manifest.modelVersion)
        assertEquals(device.target.sha256, Sha256.hex(file))
        assertEquals(ArtifactCache(cacheDir).pathOf(device.target), file)
        assertTrue(device.program.fetched)
        assertTrue(device.slots.usingBase)
        assertArrayEquals(flat(base), device.slots.current.toFlatBytes())
        val outcome = device.refresh(body(0))
        assertTrue("refused: ${outcome.refusal}", outcome.installed)
        assertArrayEquals(flat(device(0)), device.slots.current.toFlatBytes())
        // a second device with the same cache does not download the program again
        val again = DeviceClient(Live.service(), Live.target, cacheDir)
        assertEquals(file, again.setup())
        assertFalse(again.program.fetched)
    }

    /**
     * The adb-started benchmark online (what BenchmarkActivity runs), against the real service: setup, the sequence
     * with a stand-in runtime (no ExecuTorch here), the generate round trip and the slot swap with real answers.
     */
    @Test
    fun theBenchmarkOnlineMeasuresEveryStepAgainstTheService() {
        val modelDir = cache()
        File(modelDir, ModelDir.REQUEST).writeText(body(0).toJson())
        val program = CountingProgram(3)
        val device = DeviceInfo.android("google", "Pixel 8", "15", 1, 1)
        val extras = mapOf<String, Any?>("model_dir" to modelDir.path, "server_url" to Live.url, "api_key" to Live.apiKey,
            "target" to Live.target, "num_iter" to 4, "num_warm_up_iter" to 2, "num_threads" to 3)
        val records = Benchmarks.run(extras, cache(), listOf(Live.target), device, { _, threads -> program.also { it.threads = threads } },
            { 100.0 }, MemoryMetrics.PSS)
        assertEquals(listOf(Metrics.AVG, Metrics.TRIMMEAN, Metrics.P50, Metrics.P90, Metrics.P99, Metrics.MODEL_LOAD,
            Metrics.LOAD_STATUS, Metrics.RAM_PSS, Metrics.RAM_PSS_PEAK, Metrics.GENERATE_ROUND_TRIP, Metrics.SLOT_SWAP,
            Metrics.NUM_THREADS), records.map { it.metric })
        assertEquals(2 + 4 + BenchmarkRun.SWAP_WARM_UP + BenchmarkRun.SWAP_TIMED, program.forwards)
        // the swap binds the generated slots of device 0, as the Python client decodes them
        assertArrayEquals(flat(device(0)), program.lastSlots)
        assertTrue(records.first { it.metric == Metrics.GENERATE_ROUND_TRIP }.actualValue > 0)
        assertEquals(3.0, records.first { it.metric == Metrics.NUM_THREADS }.actualValue, 0.0)
        val wrong = Benchmarks.run(extras + ("api_key" to Live.json().get("wrong_key").asString), cache(), listOf(Live.target),
            device, { _, _ -> program }, { 100.0 }, MemoryMetrics.PSS)
        assertEquals(listOf(Metrics.BENCHMARK_FAILED), wrong.map { it.metric })
        assertTrue(wrong[0].error, wrong[0].error.startsWith("setup: service: ") && wrong[0].error.contains("401"))
    }
}

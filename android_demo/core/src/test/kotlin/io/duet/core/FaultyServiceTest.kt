/** What the real service never does, from tests/faulty_service.py (live.json "faulty"): each is refused, nothing is kept. */
package io.duet.core

import io.duet.core.Live.body
import io.duet.core.Live.device
import io.duet.core.Live.flat
import io.duet.core.Fixtures.refused
import org.junit.AfterClass
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.BeforeClass
import org.junit.Test
import java.io.File

class FaultyServiceTest {
    companion object {
        private val dirs = ArrayList<File>()

        @BeforeClass
        @JvmStatic
        fun findTheStandIn() {
            Live.json()
        }

        @AfterClass
        @JvmStatic
        fun removeTheCaches() {
            for (dir in dirs) dir.deleteRecursively()
        }
    }

    private val manifest: Manifest by lazy { Live.service().manifest() }

    private fun cache(): File = Live.tempDir("duet-faulty-cache").also { dirs.add(it) }

    /** A device on the real service's Base slots with device 0's generated slots installed (the last good ones). */
    private fun deviceWithGoodSlots(): DeviceSlots {
        val device = DeviceSlots.load(Live.service(), manifest)
        assertTrue(device.refresh(Live.service(), body(0)).installed)
        assertArrayEquals(flat(device(0)), device.current.toFlatBytes())
        return device
    }

    /** A refresh from [client] is refused with [reason] and the last good slots stay; the refusal. */
    private fun refreshRefused(client: ServiceClient, reason: Reason): Refusal {
        val device = deviceWithGoodSlots()
        val good = device.current
        val outcome = device.refresh(client, body(1))
        assertFalse(outcome.installed)
        assertEquals(good, outcome.current)
        assertEquals(good, device.current)
        assertFalse(device.usingBase)
        val why = device.lastRefusal!!
        assertEquals(why, outcome.refusal)
        assertEquals(why.message, reason, why.reason)
        return why
    }

    private fun downloadRefused(mode: String, reason: Reason, vararg fragments: String): DuetException {
        val cacheDir = cache()
        val e = refused(reason, *fragments) { Live.faulty(mode).download(manifest, Live.target, cacheDir) }
        assertEquals("nothing is left in the cache", emptyList<File>(), Live.filesIn(cacheDir))
        assertNull(ArtifactCache(cacheDir).lookup(manifest.target(Live.target)))
        return e
    }

    @Test
    fun theStandInServesTheRealManifest() {
        assertEquals(manifest, Live.faulty("tampered").manifest())
    }

    @Test
    fun tamperedBlobIsRefusedAndTheLastGoodSlotsStay() {
        val why = refreshRefused(Live.faulty("tampered"), Reason.BLOB)
        assertTrue(why.message, why.message.contains("corrupted in transit"))
        refused(Reason.BLOB, "corrupted in transit") { DeviceSlots.load(Live.faulty("tampered"), manifest) }
    }

    @Test
    fun wrongModelVersionIsAManifestError() {
        val why = refreshRefused(Live.faulty("wrong-version"), Reason.MANIFEST)
        assertTrue(why.message, why.message.contains("model version ffffffffffffffff"))
    }

    @Test
    fun wrongArtifactShaHeaderIsRefusedBeforeWriting() {
        downloadRefused("wrong-artifact", Reason.MANIFEST, "with sha256 ${"0".repeat(64)}", "fetch the manifest again")
    }

    @Test
    fun corruptArtifactIsDeleted() {
        downloadRefused("corrupt-artifact", Reason.MANIFEST, "the downloaded file has sha256", "the download was deleted")
    }

    @Test
    fun hangUpMidDownloadLeavesNothingInTheCache() {
        val e = downloadRefused("hangup", Reason.SERVICE, "no answer")
        assertEquals(0, e.status)
    }

    @Test
    fun hangUpMidGenerateKeepsTheLastGoodSlots() {
        val why = refreshRefused(Live.faulty("hangup"), Reason.SERVICE)
        assertEquals(0, why.status)
        val e = refused(Reason.SERVICE, "no answer") { Live.faulty("hangup").baseSlots() }
        assertEquals(0, e.status)
    }

    @Test
    fun busyIs503OverloadedWithRetryAfter() {
        val why = refreshRefused(Live.faulty("busy"), Reason.SERVICE)
        assertEquals(503, why.status)
        assertEquals("overloaded", why.code)
        val e = refused(Reason.SERVICE, "503 overloaded: the generate queue is full") { Live.faulty("busy").generate(body(0)) }
        assertEquals(503, e.status)
        assertEquals("overloaded", e.code)
        assertEquals(2.0, e.retryAfterSeconds!!, 0.0)
        val cacheDir = cache()
        val download = refused(Reason.SERVICE, "503") { Live.faulty("busy").download(manifest, Live.target, cacheDir) }
        assertEquals(2.0, download.retryAfterSeconds!!, 0.0)
        assertEquals(emptyList<File>(), Live.filesIn(cacheDir))
    }

    @Test
    fun aNonJsonErrorIsHttpError() {
        val why = refreshRefused(Live.faulty("not-json"), Reason.SERVICE)
        assertEquals(502, why.status)
        assertEquals("http_error", why.code)
        val e = refused(Reason.SERVICE, "502 http_error: Bad Gateway: upstream went away") { Live.faulty("not-json").baseSlots() }
        assertNull(e.retryAfterSeconds)
    }

    @Test
    fun aSilentServiceTimesOut() {
        val started = System.nanoTime()
        val why = refreshRefused(Live.faulty("silent", timeoutMillis = 1000), Reason.SERVICE)
        val seconds = (System.nanoTime() - started) / 1e9
        assertEquals(0, why.status)
        assertTrue(why.message, why.message.contains("no answer"))
        assertTrue("took $seconds s", seconds < 15)
    }

    @Test
    fun aSlowRefusalDoesNotHideALaterSuccess() {
        val device = DeviceSlots.load(Live.service(), manifest)
        var slow: RefreshOutcome? = null
        val thread = Thread { slow = device.refresh(Live.faulty("silent", timeoutMillis = 3000), body(1)) }
        thread.start()
        Thread.sleep(500) // the slow refresh has begun (it waits 3 s for an answer)
        val good = device.install(Live.service().generate(body(0)))
        thread.join()
        assertFalse(slow!!.installed)
        assertEquals(0, slow!!.refusal!!.status)
        assertNull("the success came after the slow attempt began", device.lastRefusal)
        assertEquals(good, device.current)
        assertArrayEquals(flat(device(0)), device.current.toFlatBytes())
    }
}

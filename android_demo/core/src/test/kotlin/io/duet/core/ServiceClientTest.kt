/**
 * ServiceClient and HttpExchange where neither the live service nor the faulty stand-in can show it (both are in
 * LiveServiceTest and FaultyServiceTest): nothing listening, non-HTTP URLs, redirects, body caps, cut-short bodies.
 */
package io.duet.core

import io.duet.core.Fixtures.refused
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test
import java.io.ByteArrayInputStream
import java.io.IOException
import java.net.ServerSocket

class ServiceClientTest {
    @Test
    fun noAnswerIsStatusZero() {
        val port = ServerSocket(0).use { it.localPort } // closed again: nothing listens there
        val e = refused(Reason.SERVICE, "no answer from the service") { ServiceClient("http://127.0.0.1:$port", "k").manifest() }
        assertEquals(0, e.status)
    }

    @Test
    fun onlyHttpAndHttpsUrls() {
        for (url in listOf("file:///tmp", "ftp://127.0.0.1", "jar:file:/tmp/x.jar!/")) {
            val e = refused(Reason.SERVICE, "URLs are not supported") { ServiceClient(url, "k").manifest() }
            assertEquals(0, e.status)
        }
        val e = refused(Reason.SERVICE, "is not a service URL") { ServiceClient("duet://x", "k").baseSlots() }
        assertEquals(0, e.status)
    }

    @Test
    fun redirectsAreNotFollowed() {
        // the real service never redirects: a stub that does, to a route that would answer the manifest
        TestServer(mapOf(
            "/v1/manifest" to { _: Received -> Reply(302, ByteArray(0), mapOf("Location" to "/elsewhere/v1/manifest")) },
            "/elsewhere/v1/manifest" to { _: Received -> Reply(200, "{}".toByteArray()) }
        )).use { server ->
            val e = refused(Reason.SERVICE, "unexpected status 302") { ServiceClient(server.url, "k").manifest() }
            assertEquals(302, e.status)
            assertEquals(listOf("/v1/manifest"), server.received.map { it.path }) // the key went nowhere else
            assertEquals("Bearer k", server.received.single().headers["authorization"])
        }
    }

    @Test
    fun bodiesAreCapped() {
        val bytes = ByteArray(1000) { it.toByte() }
        assertArrayEquals(bytes, HttpExchange.readCapped(ByteArrayInputStream(bytes), 1000))
        assertNull(HttpExchange.readCapped(ByteArrayInputStream(bytes), 999))
        assertArrayEquals(bytes.copyOf(10), HttpExchange.readAtMost(ByteArrayInputStream(bytes), 10))
        assertEquals(0, HttpExchange.readAtMost(null, 10).size)
        assertEquals(64L * 1024, HttpExchange.ERROR_BODY_CAP)
        assertEquals(64L * 1024 * 1024, HttpExchange.ANSWER_CAP)
        // an endless answer stops being read just past the cap
        var served = 0L
        val endless = object : java.io.InputStream() {
            override fun read(): Int {
                served += 1
                return 7
            }
        }
        assertNull(HttpExchange.readCapped(endless, 100_000))
        assertTrue("read $served bytes", served <= 100_001)
    }

    @Test
    fun aBodyCutShortOfItsContentLengthIsAnIOException() {
        val full = HttpExchange.checked(ByteArrayInputStream(ByteArray(20)), 20).readBytes()
        assertEquals(20, full.size)
        try {
            HttpExchange.checked(ByteArrayInputStream(ByteArray(10)), 20).readBytes()
            fail("a cut-short body was read as complete")
        } catch (e: IOException) {
            assertTrue(e.message, e.message!!.contains("after 10 of 20 bytes"))
        }
    }
}

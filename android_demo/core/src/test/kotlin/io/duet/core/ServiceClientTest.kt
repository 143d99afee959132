/** ServiceClient against an in-process HTTP server: the key, the download cache, slot answers and the error mapping. */
package io.duet.core

import io.duet.core.Fixtures.goodBlob
import io.duet.core.Fixtures.refused
import org.junit.After
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertTrue
import org.junit.Test
import java.io.File
import java.net.ServerSocket
import java.nio.file.Files

class ServiceClientTest {
    private val program = "the program bytes".toByteArray()
    private val programSha = Sha256.hex(program)
    private val manifestText: String = run {
        val json = Fixtures.manifestJson()
        val tflite = json.getAsJsonObject("targets").getAsJsonObject("tflite")
        tflite.addProperty("sha256", programSha)
        tflite.addProperty("bytes", program.size)
        com.google.gson.Gson().toJson(json)
    }
    private val cacheDir: File = Files.createTempDirectory("duet-cache").toFile()
    private var servedProgram = program
    private var servedShaHeader = programSha
    private val server = TestServer(mapOf(
        "/v1/manifest" to { _: Received -> Reply(200, manifestText.toByteArray()) },
        "/v1/artifacts/tflite" to { _: Received -> Reply(200, servedProgram, mapOf("X-Artifact-SHA256" to servedShaHeader)) },
        "/v1/slots/base" to { _: Received ->
            Reply(200, goodBlob(), mapOf("X-Blob-SHA256" to Sha256.hex(goodBlob()), "X-Model-Version" to Fixtures.MODEL_VERSION,
                "X-Slot-Dtype" to "float32"))
        },
        "/v1/generate" to { r: Received ->
            if (r.headers["authorization"] != "Bearer good-key") {
                Reply(401, "{\"error\":\"unauthorized\",\"message\":\"missing or unknown API key\"}".toByteArray())
            } else {
                Reply(503, "{\"error\":\"overloaded\",\"message\":\"queue full; retry later\"}".toByteArray(), mapOf("Retry-After" to "1"))
            }
        },
        "/v1/broken" to { _: Received -> Reply(500, "Internal Server Error".toByteArray()) }
    ))
    private val client = ServiceClient(server.url + "/", "good-key")

    @After
    fun tearDown() {
        server.close()
        cacheDir.deleteRecursively()
    }

    @Test
    fun sendsTheKeyAndParsesTheManifest() {
        val manifest = client.manifest()
        assertEquals(programSha, manifest.target("tflite").sha256)
        assertEquals("Bearer good-key", server.received.single().headers["authorization"])
    }

    @Test
    fun downloadGoesToTheShaKeyedCacheOnce() {
        val manifest = client.manifest()
        val first = client.download(manifest, "tflite", cacheDir)
        assertTrue(first.fetched)
        assertEquals(File(File(cacheDir, programSha), "model.tflite"), first.file)
        assertArrayEquals(program, first.file.readBytes())
        val sent = client.requestsSent
        val second = client.download(manifest, "tflite", cacheDir)
        assertFalse(second.fetched)
        assertEquals(first.file, second.file)
        assertEquals(sent, client.requestsSent)
        assertEquals(2, server.received.size) // manifest + one download
        assertEquals(listOf("model.tflite"), File(cacheDir, programSha).list()!!.toList()) // no temp file left
    }

    @Test
    fun aCachedFileWithTheWrongDigestIsFetchedAgain() {
        val manifest = client.manifest()
        val target = manifest.target("tflite")
        val path = ArtifactCache(cacheDir).pathOf(target)
        path.parentFile.mkdirs()
        path.writeText("stale")
        assertTrue(client.download(manifest, "tflite", cacheDir).fetched)
        assertArrayEquals(program, path.readBytes())
    }

    @Test
    fun aDownloadWithTheWrongDigestIsDeleted() {
        val manifest = client.manifest()
        servedProgram = "tampered program!".toByteArray()
        refused(Reason.MANIFEST, "the downloaded file has sha256 ${Sha256.hex(servedProgram)}", "the download was deleted") {
            client.download(manifest, "tflite", cacheDir)
        }
        assertEquals(0, File(cacheDir, programSha).list()!!.size)
    }

    @Test
    fun aServedDigestThatDiffersFromTheManifestIsRefused() {
        val manifest = client.manifest()
        servedShaHeader = "b".repeat(64)
        refused(Reason.MANIFEST, "fetch the manifest again") { client.download(manifest, "tflite", cacheDir) }
        assertFalse(ArtifactCache(cacheDir).pathOf(manifest.target("tflite")).exists())
    }

    @Test
    fun unknownTargetAndMissingRoute() {
        val manifest = client.manifest()
        refused(Reason.MANIFEST, "no target 'onnx'") { client.download(manifest, "onnx", cacheDir) }
        val e = refused(Reason.SERVICE, "GET /v1/artifacts/executorch: 404 not_found: no route") {
            client.download(manifest, "executorch", cacheDir)
        }
        assertEquals(404, e.status)
    }

    @Test
    fun baseSlotsCarryTheirHeaders() {
        val answer = client.baseSlots(SlotDtype.FLOAT16)
        assertEquals(Fixtures.MODEL_VERSION, answer.modelVersion)
        assertEquals("float32", answer.slotDtype)
        assertEquals("dtype=float16", server.received.last().query)
        assertEquals(SlotBlob.decode(goodBlob(), Fixtures.manifest()), answer.check(Fixtures.manifest()))
    }

    @Test
    fun errorAnswersMapToServiceErrors() {
        val body = RequestBody.Builder().text("device_id", "d").ints("items", intArrayOf(1)).build()
        val overloaded = refused(Reason.SERVICE, "POST /v1/generate: 503 overloaded: queue full") { client.generate(body, binary = true) }
        assertEquals(503, overloaded.status)
        assertEquals("overloaded", overloaded.code)
        assertEquals(1.0, overloaded.retryAfterSeconds!!, 0.0)
        assertEquals("application/octet-stream", server.received.last().headers["content-type"])
        assertArrayEquals(WireEncoder.encode(body), server.received.last().body)
        val unauthorized = refused(Reason.SERVICE, "401 unauthorized: missing or unknown API key") {
            ServiceClient(server.url, "wrong").generate(body)
        }
        assertEquals(401, unauthorized.status)
        assertEquals(null, unauthorized.retryAfterSeconds)
        assertEquals("application/json", server.received.last().headers["content-type"])
        assertEquals(body.toJson(), String(server.received.last().body, Charsets.UTF_8))
    }

    @Test
    fun nonJsonErrorBodiesAreHttpError() {
        val e = ServiceErrors.fromAnswer("GET", "/v1/broken", 500, "Internal Server Error".toByteArray(), "Fri, 07 Nov 2025 08:00:00 GMT")
        assertEquals("http_error", e.code)
        assertEquals(null, e.retryAfterSeconds)
        assertTrue(e.message!!.endsWith("500 http_error: Internal Server Error"))
        val long = ServiceErrors.fromAnswer("GET", "/x", 502, ByteArray(500) { 0x78 }, "2.5")
        assertTrue(long.message, long.message!!.endsWith(": " + "x".repeat(200)))
        assertEquals(2.5, long.retryAfterSeconds!!, 0.0)
    }

    @Test
    fun noAnswerIsStatusZero() {
        val port = ServerSocket(0).use { it.localPort } // closed again: nothing listens there
        val e = refused(Reason.SERVICE, "no answer from the service") { ServiceClient("http://127.0.0.1:$port", "k").manifest() }
        assertEquals(0, e.status)
    }

    @Test
    fun aSilentServerTimesOut() {
        ServerSocket(0).use { silent -> // accepts the connection (backlog) but never answers
            val e = refused(Reason.SERVICE, "no answer") {
                ServiceClient("http://127.0.0.1:${silent.localPort}", "k", timeoutMillis = 300).manifest()
            }
            assertEquals(0, e.status)
        }
    }
}

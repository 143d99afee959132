/** The golden files of tests/golden (expected.json): manifests, slot blobs, request bodies and statistics, as Python decides. */
package io.duet.core

import com.google.gson.JsonObject
import com.google.gson.JsonParser
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertTrue
import org.junit.Test

class GoldenTest {
    private val expected: JsonObject = JsonParser.parseString(Golden.file("expected.json").readText()).asJsonObject
    private val manifest: Manifest by lazy { Manifest.parse(Golden.file(expected.get("manifest").asString).readBytes()) }

    /** Run [action] for a case that should end with [error] (a reason id, or null for success); a problem or null. */
    private fun outcome(name: String, why: String, error: String?, action: () -> Unit): String? {
        try {
            action()
        } catch (e: DuetException) {
            return if (e.reason.id == error) null else "$name ($why): expected ${error ?: "success"}, got ${e.reason.id}: ${e.message}"
        }
        return if (error == null) null else "$name ($why): expected a $error refusal, it was accepted"
    }

    private fun entries(key: String): List<JsonObject> {
        val list = expected.getAsJsonArray(key).map { it.asJsonObject }
        assertTrue("expected.json has no $key", list.isNotEmpty())
        return list
    }

    private fun JsonObject.error(): String? = get("error")?.takeIf { !it.isJsonNull }?.asString

    @Test
    fun manifests() {
        val problems = entries("manifests").mapNotNull { m ->
            val name = m.get("file").asString
            outcome(name, m.get("why").asString, m.error()) { Manifest.parse(Golden.file(name).readBytes()) }
        }
        assertTrue(problems.joinToString("\n"), problems.isEmpty())
    }

    @Test
    fun blobs() {
        var decoded = 0
        val problems = entries("blobs").mapNotNull { b ->
            val name = b.get("file").asString
            outcome(name, b.get("why").asString, b.error()) {
                val slots = SlotBlob.decode(Golden.file(name).readBytes(), manifest)
                if (b.error() == null) {
                    assertArrayEquals("$name: flat bytes", Golden.file(b.get("flat").asString).readBytes(), slots.toFlatBytes())
                    decoded += 1
                }
            }
        }
        assertTrue(problems.joinToString("\n"), problems.isEmpty())
        assertEquals(entries("blobs").count { it.error() == null }, decoded)
    }

    /**
     * The trust cases (signed, bounded blobs): each answer assembled as toolkit tests/test_golden.py does (the blob
     * file, its sha256, the trusted manifest's model version, the case's X-Blob-Signature) and checked like any answer.
     */
    @Test
    fun signedAndBoundedBlobs() {
        val trust = expected.getAsJsonObject("trust")
        assertNotNull("expected.json has no trust section", trust)
        val trusted = Manifest.parse(Golden.file(trust.get("manifest").asString).readBytes())
        assertNotNull("the trusted manifest carries no signing key", trusted.signing)
        assertTrue("the trusted manifest's slots carry no max_abs", trusted.slots.all { it.maxAbs != null })
        val cases = trust.getAsJsonArray("cases").map { it.asJsonObject }
        assertTrue("expected.json has no trust cases", cases.isNotEmpty())
        val kinds = mapOf("signature" to Regex("signature|not signed|not base64"), "bounds" to Regex("beyond its bound"))
        var accepted = 0
        val problems = cases.mapIndexedNotNull { i, c ->
            val name = c.get("blob").asString
            val why = c.get("why").asString
            val error = c.error()
            val blob = Golden.file(name).readBytes()
            val answer = SlotAnswer(blob, Sha256.hex(blob), trusted.modelVersion, "float32", c.get("signature").asString)
            try {
                val slots = answer.check(trusted)
                if (error != null) return@mapIndexedNotNull "case $i $name ($why): expected a $error refusal, it was accepted"
                if (!Golden.file(c.get("flat").asString).readBytes().contentEquals(slots.toFlatBytes())) {
                    return@mapIndexedNotNull "case $i $name ($why): accepted, but the slots differ from ${c.get("flat").asString}"
                }
                accepted += 1
                null
            } catch (e: DuetException) {
                val pattern = kinds[error]
                when {
                    error == null -> "case $i $name ($why): expected success, got ${e.reason.id}: ${e.message}"
                    pattern == null -> "case $i $name ($why): unknown expected error '$error'"
                    e.reason != Reason.BLOB || !pattern.containsMatchIn(e.message ?: "") ->
                        "case $i $name ($why): expected a blob refusal matching '$pattern', got ${e.reason.id}: ${e.message}"
                    else -> null
                }
            }
        }
        assertTrue(problems.joinToString("\n"), problems.isEmpty())
        assertEquals(cases.count { it.error() == null }, accepted)
    }

    @Test
    fun requestBodiesEncodeToTheSameBytes() {
        for (r in entries("requests")) {
            val json = r.get("json").asString
            val body = RequestBody.fromJson(Golden.file(json).readText())
            val want = Golden.file(r.get("binary").asString).readBytes()
            assertEquals("$json: binary body", Sha256.toHex(want), Sha256.toHex(WireEncoder.encode(body)))
        }
    }

    @Test
    fun statistics() {
        val stats = expected.getAsJsonObject("stats")
        val samples = stats.getAsJsonArray("samples_ms").map { it.asDouble }
        assertTrue("expected.json has no latency samples", samples.isNotEmpty())
        val s = LatencyStats.of(samples)
        // exactly numpy's doubles (no tolerance): pairwise sums for the means, numpy's two-sided linear percentiles
        assertEquals("avg", stats.get("avg").asDouble, s.avg, 0.0)
        assertEquals("trimmean", stats.get("trimmean").asDouble, s.trimmean, 0.0)
        assertEquals("p50", stats.get("p50").asDouble, s.p50, 0.0)
        assertEquals("p90", stats.get("p90").asDouble, s.p90, 0.0)
        assertEquals("p99", stats.get("p99").asDouble, s.p99, 0.0)
    }
}

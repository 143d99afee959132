/**
 * The golden files of tests/golden (expected.json): manifests, slot blobs, request bodies, statistics and the benchmark
 * records file, as Python decides.
 */
package io.duet.core

import com.google.gson.JsonElement
import com.google.gson.JsonObject
import com.google.gson.JsonParser
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertTrue
import org.junit.Test
import java.io.File
import java.nio.file.Files

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

    /**
     * expected.json "benchmark_results": the records file an app writes, rebuilt with the core's own code (LatencyStats
     * of the samples of [latency_from], BenchmarkRecords.latency, then BenchmarkRecords.of for each extra pair, the model
     * and device of the entry) and written by BenchmarkRecords.write; parsed, it must be the golden file: the same
     * records in the same order, the same keys, every value equal (numbers exactly, as in [statistics]).
     */
    @Test
    fun benchmarkResultsFile() {
        val entry = expected.getAsJsonObject("benchmark_results")
        assertNotNull("expected.json has no benchmark_results section", entry)
        val m = entry.getAsJsonObject("model")
        val model = BenchmarkModel(m.get("name").asString, m.get("backend").asString, m.get("quantization").asString)
        val d = entry.getAsJsonObject("device")
        val device = DeviceInfo(d.get("device").asString, d.get("arch").asString, d.get("os").asString,
            d.get("totalMem").asLong, d.get("availMem").asLong)
        val samples = expected.getAsJsonObject(entry.get("latency_from").asString).getAsJsonArray("samples_ms").map { it.asDouble }
        assertTrue("expected.json has no latency samples", samples.isNotEmpty())
        val extra = entry.getAsJsonArray("extra").map { it.asJsonArray }
        assertTrue("expected.json benchmark_results has no extra records", extra.isNotEmpty())
        val records = BenchmarkRecords.latency(model, device, LatencyStats.of(samples)) + extra.map { pair ->
            val metric = pair[0].asString
            BenchmarkRecords.of(model, metric, pair[1].asDouble, device) ?: throw AssertionError("extra $metric: no record")
        }
        val name = entry.get("file").asString
        val dir = Files.createTempDirectory("golden-records").toFile()
        try {
            val file = File(dir, name)
            BenchmarkRecords.write(records, file)
            val problems = ArrayList<String>()
            jsonDiff(name, JsonParser.parseString(Golden.file(name).readText()), JsonParser.parseString(file.readText()), problems)
            assertTrue("written records differ from the golden $name:\n" + problems.joinToString("\n"), problems.isEmpty())
        } finally {
            dir.deleteRecursively()
        }
    }

    /** Every difference between [want] (golden) and [got] (written) under [path]: keys, kinds, order, values (numbers exactly). */
    private fun jsonDiff(path: String, want: JsonElement, got: JsonElement, problems: MutableList<String>) {
        when {
            want.isJsonObject && got.isJsonObject -> {
                val w = want.asJsonObject
                val g = got.asJsonObject
                for (key in w.keySet() - g.keySet()) problems.add("$path: no key $key")
                for (key in g.keySet() - w.keySet()) problems.add("$path: unexpected key $key")
                for (key in w.keySet().intersect(g.keySet())) jsonDiff("$path.$key", w.get(key), g.get(key), problems)
            }
            want.isJsonArray && got.isJsonArray -> {
                val w = want.asJsonArray
                val g = got.asJsonArray
                if (w.size() != g.size()) problems.add("$path: ${w.size()} items in the golden file, ${g.size()} written")
                for (i in 0 until Math.min(w.size(), g.size())) {
                    val metric = w[i].takeIf { it.isJsonObject }?.asJsonObject?.get("metric")?.takeIf { it.isJsonPrimitive }?.asString
                    jsonDiff("$path[$i]" + (metric?.let { " ($it)" } ?: ""), w[i], g[i], problems)
                }
            }
            want.isJsonPrimitive && got.isJsonPrimitive && want.asJsonPrimitive.isNumber && got.asJsonPrimitive.isNumber -> {
                if (want.asDouble != got.asDouble) {
                    problems.add("$path: golden $want (${want.asDouble}), written $got (${got.asDouble})")
                }
            }
            want.isJsonPrimitive && got.isJsonPrimitive && want.asJsonPrimitive.isString && got.asJsonPrimitive.isString -> {
                if (want.asString != got.asString) problems.add("$path: golden $want, written $got")
            }
            want != got -> problems.add("$path: golden $want, written $got")
        }
    }
}

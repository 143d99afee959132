/**
 * The golden files of tests/golden (expected.json): manifests, slot blobs (signed, bounded, pinned), request bodies,
 * statistics, the benchmark's sampling sequence and its records file, the request trigger's vectors, as Python decides.
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

    @Test
    fun aUserModelsKernelAndVectorSlotsDecode() {
        val model = expected.getAsJsonObject("user_model")
        val userManifest = Manifest.parse(Golden.file(model.get("manifest").asString).readBytes())
        val shapes = model.getAsJsonObject("shapes").entrySet().map { (name, shape) -> name to shape.asJsonArray.map { it.asInt } }
        assertEquals(shapes, userManifest.slots.map { it.name to it.shape })
        assertTrue("a 4-D kernel slot", userManifest.slots.any { it.shape.size == 4 })
        val slots = SlotBlob.decode(Golden.file(model.get("blob").asString).readBytes(), userManifest)
        assertArrayEquals(Golden.file(model.get("flat").asString).readBytes(), slots.toFlatBytes())
    }

    /** What each expected error id of the trust and pinning cases must be: its reason and words of its message. */
    private val kinds = mapOf("signature" to Pair(Reason.BLOB, Regex("signature|not signed|not base64")),
        "bounds" to Pair(Reason.BLOB, Regex("beyond its bound")), "version" to Pair(Reason.BLOB, Regex("model version")),
        "pinned" to Pair(Reason.MANIFEST, Regex("pinned")))

    /** A problem with one trust or pinning case, or null: [check] must accept to [flat]'s bytes or refuse as [error] says. */
    private fun trustOutcome(what: String, error: String?, flat: String?, check: () -> SlotSet): String? {
        val slots = try {
            check()
        } catch (e: DuetException) {
            val (reason, pattern) = kinds[error] ?: return "$what: expected ${error ?: "success"}, got ${e.reason.id}: ${e.message}"
            return if (e.reason == reason && pattern.containsMatchIn(e.message ?: "")) null
            else "$what: expected a ${reason.id} refusal matching '$pattern', got ${e.reason.id}: ${e.message}"
        }
        if (error != null) return "$what: expected a $error refusal, it was accepted"
        return if (Golden.file(flat!!).readBytes().contentEquals(slots.toFlatBytes())) null else "$what: accepted, but the slots differ from $flat"
    }

    /** A case's answer as tests/test_golden.py assembles it: the blob file, its sha256, the manifest's version, the signature. */
    private fun caseAnswer(c: JsonObject, manifest: Manifest): SlotAnswer {
        val blob = Golden.file(c.get("blob").asString).readBytes()
        return SlotAnswer(blob, Sha256.hex(blob), manifest.modelVersion, "float32", c.get("signature").asString)
    }

    /**
     * The trust cases (signed, bounded blobs, blobs of another run): each answer checked like any answer, once with
     * Bouncy Castle's Ed25519 (what Android below API 33 runs) and once with the JDK's.
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
        assertEquals(setOf(null, "signature", "bounds", "version"), cases.map { it.error() }.toSet())
        for (verifier in listOf<Ed25519Verifier>(BouncyCastleEd25519, PlatformEd25519)) {
            val problems = cases.mapIndexedNotNull { i, c ->
                trustOutcome("${verifier.name}: case $i ${c.get("blob").asString} (${c.get("why").asString})", c.error(),
                    c.get("flat")?.asString) { caseAnswer(c, trusted).check(trusted, verifier = verifier) }
            }
            assertTrue(problems.joinToString("\n"), problems.isEmpty())
        }
    }

    /**
     * The pinning cases: a client pinned to the golden key ([ServiceClient]'s pinnedKey) refuses a manifest naming
     * another key or none ([SigningPin], what ServiceClient.manifest does) and every answer checked under it.
     */
    @Test
    fun aPinnedKeyCannotBeReplacedByAManifest() {
        val pinning = expected.getAsJsonObject("pinning")
        assertNotNull("expected.json has no pinning section", pinning)
        val pinned = pinning.get("pinned_key").asString
        val cases = pinning.getAsJsonArray("cases").map { it.asJsonObject }
        assertEquals(setOf(null, "pinned"), cases.map { it.error() }.toSet())
        val problems = cases.mapIndexedNotNull { i, c ->
            val manifest = Manifest.parse(Golden.file(c.get("manifest").asString).readBytes())
            val what = "case $i ${c.get("manifest").asString} (${c.get("why").asString})"
            trustOutcome("$what, manifest", c.error(), c.get("flat")?.asString) {
                SigningPin.check(manifest, pinned)
                caseAnswer(c, manifest).check(manifest)
            } ?: trustOutcome("$what, answer", c.error(), c.get("flat")?.asString) {
                caseAnswer(c, manifest).check(manifest, pinned, BouncyCastleEd25519)
            }
        }
        assertTrue(problems.joinToString("\n"), problems.isEmpty())
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
        // exactly the golden doubles (no tolerance): minibench's ascending sums, numpy's two-sided linear percentiles
        assertEquals("avg", stats.get("avg").asDouble, s.avg, 0.0)
        assertEquals("trimmean", stats.get("trimmean").asDouble, s.trimmean, 0.0)
        assertEquals("p50", stats.get("p50").asDouble, s.p50, 0.0)
        assertEquals("p90", stats.get("p90").asDouble, s.p90, 0.0)
        assertEquals("p99", stats.get("p99").asDouble, s.p99, 0.0)
    }

    private fun scenarios(): List<JsonObject> = entries("sampling")

    /** Run a golden sampling scenario with the core's BenchmarkRun against its scripted host; the host and the records. */
    private fun play(scenario: JsonObject, model: BenchmarkModel, device: DeviceInfo): Pair<ScriptedHost, List<BenchmarkRecord>> {
        val host = ScriptedHost.of(scenario.getAsJsonObject("script"), manifest, scenario.get("service").asBoolean)
        val memory = when (val m = scenario.get("memory_metric").asString) {
            "ram_pss" -> MemoryMetrics.PSS
            "phys_footprint" -> MemoryMetrics.FOOTPRINT
            else -> throw AssertionError("unknown memory_metric $m")
        }
        val run = BenchmarkRun(manifest, manifest.target("executorch"), host.labelled("base"), BenchmarkInputs.of(manifest, null),
            scenario.get("num_warm_up_iter").asInt, scenario.get("num_iter").asInt, memory, null, host)
        return Pair(host, run.run(host, model, device))
    }

    /**
     * expected.json "sampling": the one sampling sequence. Each scenario's script played by [ScriptedHost] must give
     * the scenario's trace (every operation and clock read, in order: what lies inside each timed region, which slots
     * are bound) and its records (metrics in order, values exactly, a failure record's error starting with its step).
     */
    @Test
    fun theSamplingSequence() {
        val model = BenchmarkModel("model", "xnnpack", "int8")
        val device = DeviceInfo.android("google", "Pixel 8", "15", 1, 1)
        for (scenario in scenarios()) {
            val name = scenario.get("name").asString
            val (host, records) = play(scenario, model, device)
            assertEquals("$name: trace", scenario.getAsJsonArray("trace").map { it.asString }, host.trace)
            val want = scenario.getAsJsonArray("records").map { it.asJsonObject }
            assertEquals("$name: metrics", want.map { it.get("metric").asString }, records.map { it.metric })
            for ((w, r) in want.zip(records)) {
                assertEquals("$name: ${r.metric}", w.get("value").asDouble, r.actualValue, 0.0)
                val error = w.get("error")?.asString
                if (error == null) assertEquals("$name: ${r.metric} error", "", r.error)
                else assertTrue("$name: ${r.metric} error '${r.error}' should start with '$error'", r.error.startsWith(error))
            }
        }
    }

    /**
     * expected.json "benchmark_results": the records file an app writes, rebuilt with the core's own code (the
     * scenario it names played by BenchmarkRun with the entry's model and device) and written by
     * BenchmarkRecords.write; parsed, it must be the golden file: the same records in the same order, the same keys,
     * every value equal (numbers exactly, as in [statistics]).
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
        val scenario = scenarios().first { it.get("name").asString == entry.get("scenario").asString }
        val records = play(scenario, model, device).second
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

    private val trigger: JsonObject get() = expected.getAsJsonObject("trigger")

    private fun window(element: JsonElement): List<DoubleArray> =
        element.asJsonArray.map { row -> row.asJsonArray.map { it.asDouble }.toDoubleArray() }

    private fun confidence(step: JsonObject): Double? = step.get("confidence")?.takeIf { !it.isJsonNull }?.asDouble

    @Test
    fun triggerConfigurations() {
        val cases = trigger.getAsJsonArray("configs").map { it.asJsonObject }
        assertTrue(cases.isNotEmpty())
        val problems = cases.mapNotNull { c ->
            outcome(c.get("config").toString(), c.get("why").asString, c.error()) { TriggerConfig.parse(c.get("config").toString()) }
        }
        assertTrue(problems.joinToString("\n"), problems.isEmpty())
    }

    @Test
    fun triggerScenariosGiveTheSameScoresBitForBitAndDecisions() {
        val scenarios = trigger.getAsJsonArray("scenarios").map { it.asJsonObject }
        assertTrue(scenarios.isNotEmpty())
        for (scenario in scenarios) {
            val name = scenario.get("name").asString
            val t = RequestTrigger(TriggerConfig.parse(scenario.get("config").toString()))
            scenario.get("start").takeIf { !it.isJsonNull }?.let { t.start(window(it)) }
            for ((i, element) in scenario.getAsJsonArray("steps").withIndex()) {
                val step = element.asJsonObject
                val w = window(step.get("window"))
                val decision = t.step(w, confidence(step))
                val bits = String.format("%016x", java.lang.Double.doubleToRawLongBits(decision.score))
                assertEquals("$name step $i: score ${decision.score}", step.get("score_bits").asString, bits)
                assertEquals("$name step $i: request", step.get("request").asBoolean, decision.request)
                if (decision.request && step.get("installed").asBoolean) t.start(w)
            }
        }
    }

    @Test
    fun triggerInputsItCannotReadAreRefused() {
        val cases = trigger.getAsJsonArray("errors").map { it.asJsonObject }
        assertTrue(cases.isNotEmpty())
        val problems = cases.mapNotNull { c ->
            outcome("trigger error case", c.get("why").asString, c.error()) {
                val t = RequestTrigger(TriggerConfig.parse(c.get("config").toString()))
                t.start(window(c.get("start")))
                t.step(window(c.get("window")), confidence(c))
            }
        }
        assertTrue(problems.joinToString("\n"), problems.isEmpty())
    }
}

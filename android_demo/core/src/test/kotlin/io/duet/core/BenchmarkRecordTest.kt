/** Benchmark records: the minibench JSON format, model names, backends and metric names. */
package io.duet.core

import com.google.gson.JsonParser
import org.junit.Assert.assertEquals
import org.junit.Test
import java.io.File
import java.nio.file.Files

class BenchmarkRecordTest {
    private val manifest = Fixtures.manifest()
    private val device = DeviceInfo("Pixel 8", "arm64-v8a", "Android 15", 8_000_000_000L, 3_000_000_000L)

    @Test
    fun modelOfATarget() {
        assertEquals(BenchmarkModel("model", "xnnpack", "int8"), BenchmarkModel.of(manifest, manifest.target("executorch")))
        assertEquals(BenchmarkModel("model", "litert", "int8"), BenchmarkModel.of(manifest, manifest.target("tflite")))
    }

    @Test
    fun recordsInTheMinibenchFormat() {
        val model = BenchmarkModel.of(manifest, manifest.target("tflite"))
        val stats = LatencyStats.of(listOf(1.0, 2.0, 3.0))
        val records = BenchmarkRecords.latency(model, device, stats) +
            BenchmarkRecord(model, Metrics.MODEL_LOAD, 12.5, device) + BenchmarkRecord(model, Metrics.LOAD_STATUS, 0.0, device)
        val dir = Files.createTempDirectory("records").toFile()
        val file = File(dir, "benchmark_results.json")
        BenchmarkRecords.write(records, file)
        val array = JsonParser.parseString(file.readText()).asJsonArray
        assertEquals(listOf("avg_inference_latency(ms)", "trimmean_inference_latency(ms)", "p50_inference_latency(ms)",
            "p90_inference_latency(ms)", "p99_inference_latency(ms)", "model_load_time(ms)", "load_status"),
            array.map { it.asJsonObject.get("metric").asString })
        val first = array[0].asJsonObject
        assertEquals(setOf("benchmarkModel", "metric", "actualValue", "targetValue", "deviceInfo"), first.keySet())
        assertEquals(2.0, first.get("actualValue").asDouble, 0.0)
        assertEquals(0.0, first.get("targetValue").asDouble, 0.0)
        assertEquals("model", first.getAsJsonObject("benchmarkModel").get("name").asString)
        assertEquals("litert", first.getAsJsonObject("benchmarkModel").get("backend").asString)
        assertEquals("int8", first.getAsJsonObject("benchmarkModel").get("quantization").asString)
        val info = first.getAsJsonObject("deviceInfo")
        assertEquals(8_000_000_000L, info.get("totalMem").asLong)
        assertEquals("arm64-v8a", info.get("arch").asString)
        assertEquals(listOf("benchmark_results.json"), dir.list()!!.toList()) // no temp file left
        dir.deleteRecursively()
    }

    @Test
    fun modelNamesDropTheLastExtension() {
        assertEquals("model", BenchmarkModel.nameOf("model.pte"))
        assertEquals("model", BenchmarkModel.nameOf("model.mlpackage"))
        assertEquals("model.int8", BenchmarkModel.nameOf("model.int8.tflite"))
        assertEquals("model", BenchmarkModel.nameOf("model"))
        assertEquals("model", BenchmarkModel.of(manifest, manifest.target("coreml")).name)
    }

    @Test
    fun nonFiniteValuesAreOmitted() {
        val model = BenchmarkModel("m", "litert", "none")
        assertEquals(null, BenchmarkRecords.of(model, Metrics.AVG, Double.NaN, device))
        assertEquals(null, BenchmarkRecords.of(model, Metrics.AVG, Double.POSITIVE_INFINITY, device))
        assertEquals(BenchmarkRecord(model, Metrics.AVG, 1.5, device), BenchmarkRecords.of(model, Metrics.AVG, 1.5, device))
        val records = listOf(BenchmarkRecord(model, Metrics.AVG, Double.NaN, device), BenchmarkRecord(model, Metrics.P50, 2.0, device),
            BenchmarkRecord(model, Metrics.P90, Double.NEGATIVE_INFINITY, device))
        val array = JsonParser.parseString(BenchmarkRecords.toJson(records)).asJsonArray
        assertEquals(listOf(Metrics.P50), array.map { it.asJsonObject.get("metric").asString })
        val nan = LatencyStats(1, Double.NaN, 1.0, 1.0, Double.POSITIVE_INFINITY, 1.0)
        assertEquals(listOf(Metrics.TRIMMEAN, Metrics.P50, Metrics.P99), BenchmarkRecords.latency(model, device, nan).map { it.metric })
    }
}

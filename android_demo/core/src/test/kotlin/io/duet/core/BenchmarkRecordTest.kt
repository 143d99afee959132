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

    @Test(expected = IllegalArgumentException::class)
    fun nonFiniteValuesAreRefused() {
        BenchmarkRecords.toJson(listOf(BenchmarkRecord(BenchmarkModel("m", "litert", "none"), Metrics.AVG, Double.NaN, device)))
    }
}

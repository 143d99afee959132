/** Benchmark records: the benchmark_results.json format of ExecuTorch's Android benchmark app (org.pytorch.minibench). */
package io.duet.core

import com.google.gson.GsonBuilder
import com.google.gson.JsonArray
import com.google.gson.JsonObject

/** The model a record is about: file name without extension, backend ("xnnpack", "litert", "coreml"), quantization mode. */
data class BenchmarkModel(val name: String, val backend: String, val quantization: String) {
    companion object {
        /** The model of [target] in [manifest]: [nameOf] its file, its target's backend, the manifest's quantization mode. */
        fun of(manifest: Manifest, target: Target): BenchmarkModel =
            BenchmarkModel(nameOf(target.file), backendOf(target.name), manifest.quantizationMode)

        /** A program file's name without its last extension: "model.pte" -> "model", "model.mlpackage" -> "model". */
        fun nameOf(file: String): String = file.substringBeforeLast('.')

        /** The backend name of a manifest target: executorch runs on XNNPACK, tflite on LiteRT. */
        fun backendOf(target: String): String = when (target) {
            "executorch" -> "xnnpack"
            "tflite" -> "litert"
            "coreml" -> "coreml"
            else -> target
        }
    }
}

/** The device a record was measured on (memory in bytes). */
data class DeviceInfo(val device: String, val arch: String, val os: String, val totalMem: Long, val availMem: Long)

/** One measured value. */
data class BenchmarkRecord(val model: BenchmarkModel, val metric: String, val actualValue: Double,
                           val device: DeviceInfo, val targetValue: Double = 0.0)

/** Metric names, identical in the Kotlin and Swift apps. */
object Metrics {
    const val AVG = "avg_inference_latency(ms)"
    const val TRIMMEAN = "trimmean_inference_latency(ms)"
    const val P50 = "p50_inference_latency(ms)"
    const val P90 = "p90_inference_latency(ms)"
    const val P99 = "p99_inference_latency(ms)"
    const val MODEL_LOAD = "model_load_time(ms)"
    const val LOAD_STATUS = "load_status"
    const val RAM_PSS = "ram_pss_usage(mb)"
    const val SLOT_SWAP = "slot_swap_latency(ms)"
    const val GENERATE_ROUND_TRIP = "generate_round_trip(ms)"
}

/** Building and writing lists of records. */
object BenchmarkRecords {
    /** The record of [metric] = [value], or null when [value] is NaN or infinite (such a record is omitted). */
    fun of(model: BenchmarkModel, metric: String, value: Double, device: DeviceInfo): BenchmarkRecord? =
        if (isFinite(value)) BenchmarkRecord(model, metric, value, device) else null

    /** The latency records of [stats] (avg, trimmean, p50, p90, p99), the non-finite ones omitted. */
    fun latency(model: BenchmarkModel, device: DeviceInfo, stats: LatencyStats): List<BenchmarkRecord> = listOfNotNull(
        of(model, Metrics.AVG, stats.avg, device),
        of(model, Metrics.TRIMMEAN, stats.trimmean, device),
        of(model, Metrics.P50, stats.p50, device),
        of(model, Metrics.P90, stats.p90, device),
        of(model, Metrics.P99, stats.p99, device)
    )

    /** The records as the JSON array of benchmark_results.json; a record with a non-finite value is omitted. */
    fun toJson(records: List<BenchmarkRecord>): String {
        val array = JsonArray()
        for (r in records) {
            if (!isFinite(r.actualValue) || !isFinite(r.targetValue)) continue
            val model = JsonObject()
            model.addProperty("name", r.model.name)
            model.addProperty("backend", r.model.backend)
            model.addProperty("quantization", r.model.quantization)
            val device = JsonObject()
            device.addProperty("device", r.device.device)
            device.addProperty("arch", r.device.arch)
            device.addProperty("os", r.device.os)
            device.addProperty("totalMem", r.device.totalMem)
            device.addProperty("availMem", r.device.availMem)
            val record = JsonObject()
            record.add("benchmarkModel", model)
            record.addProperty("metric", r.metric)
            record.addProperty("actualValue", r.actualValue)
            record.addProperty("targetValue", r.targetValue)
            record.add("deviceInfo", device)
            array.add(record)
        }
        return GsonBuilder().setPrettyPrinting().create().toJson(array)
    }

    /** Write [records] to [file] (through a temp file and a rename). */
    fun write(records: List<BenchmarkRecord>, file: java.io.File) {
        val temp = java.io.File(file.path + ".partial")
        temp.writeText(toJson(records), Charsets.UTF_8)
        if (!temp.renameTo(file)) {
            file.delete()
            if (!temp.renameTo(file)) throw java.io.IOException("cannot write $file")
        }
    }

    private fun isFinite(value: Double): Boolean = !value.isNaN() && !value.isInfinite()
}

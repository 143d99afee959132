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

/**
 * The device a record was measured on, with minibench's meanings: [device] the brand (Build.BRAND), [arch] the
 * model (Build.MODEL), [os] "Android <release>", memory in bytes.
 */
data class DeviceInfo(val device: String, val arch: String, val os: String, val totalMem: Long, val availMem: Long) {
    companion object {
        /** minibench's deviceInfo from the values of android.os.Build and ActivityManager.MemoryInfo. */
        fun android(brand: String, model: String, release: String, totalMem: Long, availMem: Long): DeviceInfo =
            DeviceInfo(brand, model, "Android $release", totalMem, availMem)
    }
}

/** One measured value; [error] is a failure record's message ([Metrics.BENCHMARK_FAILED]), "" for any other. */
data class BenchmarkRecord(val model: BenchmarkModel, val metric: String, val actualValue: Double,
                           val device: DeviceInfo, val targetValue: Double = 0.0, val error: String = "")

/**
 * Metric names, identical in the Kotlin and Swift apps and toolkit.bench.records. The names minibench writes keep
 * its meanings; a metric of ours that measures something else has a name of its own.
 */
object Metrics {
    const val AVG = "avg_inference_latency(ms)"
    const val TRIMMEAN = "trimmean_inference_latency(ms)"
    const val P50 = "p50_inference_latency(ms)"
    const val P90 = "p90_inference_latency(ms)"
    const val P99 = "p99_inference_latency(ms)"
    const val MODEL_LOAD = "model_load_time(ms)"
    /** The runtime's error code of the load (ExecuTorch's Error, -1 for a failure without one), 0 when loaded. */
    const val LOAD_STATUS = "load_status"
    /** minibench's: PSS after the timed calls minus PSS before the load. */
    const val RAM_PSS = "ram_pss_usage(mb)"
    /** Ours: the largest PSS any probe of the run read. */
    const val RAM_PSS_PEAK = "ram_pss_peak(mb)"
    /** iOS: [RAM_PSS]'s formula on the physical footprint (iOS has no PSS). */
    const val FOOTPRINT = "phys_footprint_usage(mb)"
    /** iOS: the largest physical footprint any probe read. */
    const val FOOTPRINT_PEAK = "phys_footprint_peak(mb)"
    const val SLOT_SWAP = "slot_swap_latency(ms)"
    const val GENERATE_ROUND_TRIP = "generate_round_trip(ms)"
    /** The CPU threads the runtime was given (set explicitly, never the runtime's default). */
    const val NUM_THREADS = "num_threads"
    /** iOS: MLComputeUnits' raw value (0 cpuOnly, 1 cpuAndGPU, 2 all, 3 cpuAndNeuralEngine). */
    const val COMPUTE_UNITS = "coreml_compute_units"
    /** A failure record: value 1, the step and the error in its `error` field. */
    const val BENCHMARK_FAILED = "benchmark_failed"
}

/** The two memory metrics of a platform: minibench's formula ([usage]) and the peak ([peak]) on its own measure. */
data class MemoryMetrics(val usage: String, val peak: String) {
    companion object {
        /** Android: Debug.getPss(). */
        val PSS = MemoryMetrics(Metrics.RAM_PSS, Metrics.RAM_PSS_PEAK)

        /** iOS: task_vm_info's phys_footprint. */
        val FOOTPRINT = MemoryMetrics(Metrics.FOOTPRINT, Metrics.FOOTPRINT_PEAK)
    }
}

/** Building and writing lists of records. */
object BenchmarkRecords {
    /** The record of [metric] = [value], or null when [value] is NaN or infinite (such a record is omitted). */
    fun of(model: BenchmarkModel, metric: String, value: Double, device: DeviceInfo): BenchmarkRecord? =
        if (isFinite(value)) BenchmarkRecord(model, metric, value, device) else null

    /** A failure record of [step] (value 1, [Metrics.BENCHMARK_FAILED]): "<step>: <what failed>" in its error field. */
    fun failure(model: BenchmarkModel, device: DeviceInfo, step: String, e: Throwable): BenchmarkRecord =
        BenchmarkRecord(model, Metrics.BENCHMARK_FAILED, 1.0, device, error = "$step: ${describe(e)}")

    /** What failed, in one line: a refusal's reason and message, a runtime's message, else the exception's. */
    fun describe(e: Throwable): String = when (e) {
        is DuetException -> "${e.reason.id}: ${e.message}"
        else -> e.message ?: e.javaClass.simpleName
    }.replace('\n', ' ')

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
            if (r.error != "") record.addProperty("error", r.error)
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

/**
 * The benchmark, started by adb like ExecuTorch's minibench; writes ${filesDir}/benchmark_results.json:
 *   adb shell am start -n io.duet.demo/.BenchmarkActivity --es model_dir /data/local/tmp/duet \
 *       --ei num_iter 50 --ei num_warm_up_iter 10 [--es server_url URL --es api_key KEY] [--es target tflite]
 */
package io.duet.demo

import android.os.Bundle
import android.util.Log
import android.widget.TextView
import androidx.activity.ComponentActivity
import io.duet.core.BenchmarkInputs
import io.duet.core.BenchmarkModel
import io.duet.core.BenchmarkRecord
import io.duet.core.BenchmarkRecords
import io.duet.core.BenchmarkSampling
import io.duet.core.CallAssembly
import io.duet.core.DeviceClient
import io.duet.core.DeviceSlots
import io.duet.core.DuetException
import io.duet.core.LatencyStats
import io.duet.core.Manifest
import io.duet.core.Metrics
import io.duet.core.ModelDir
import io.duet.core.RequestBody
import io.duet.core.ServiceClient
import io.duet.core.SlotAnswer
import io.duet.core.SlotSet
import io.duet.core.Stopwatch
import io.duet.core.Target
import java.io.File
import java.util.concurrent.Executors

class BenchmarkActivity : ComponentActivity() {
    private val worker = Executors.newSingleThreadExecutor()

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        val status = TextView(this).apply { text = "benchmarking..."; setPadding(32, 32, 32, 32) }
        setContentView(status)
        val modelDir = File(intent.getStringExtra("model_dir") ?: "/data/local/tmp/duet")
        val iterations = intent.getIntExtra("num_iter", 50)
        val warmUp = intent.getIntExtra("num_warm_up_iter", 10)
        val serverUrl = intent.getStringExtra("server_url")
        val settings = if (serverUrl != null) Settings.from(intent) else null
        worker.execute {
            val summary = try {
                val out = File(filesDir, "benchmark_results.json")
                val records = run(modelDir, settings, intent.getStringExtra("target"), warmUp, iterations)
                BenchmarkRecords.write(records, out)
                "wrote ${records.size} records to $out\n" + records.joinToString("\n") { "${it.metric}: ${"%.3f".format(it.actualValue)}" }
            } catch (e: Exception) {
                Log.e(TAG, "benchmark failed", e)
                "benchmark failed: $e"
            }
            Log.i(TAG, summary)
            runOnUiThread { status.text = summary }
        }
    }

    override fun onDestroy() {
        worker.shutdown()
        super.onDestroy()
    }

    /**
     * Where the program, its manifest and its slots come from: the service when a URL is given (the core's
     * DeviceClient.setup), else model_dir (the core's ModelDir). [swap] is the slot answer the slot swap installs.
     */
    private class Source(val manifest: Manifest, val target: Target, val file: File, val base: SlotSet,
                         val service: ServiceClient?, val body: RequestBody?, val swap: () -> SlotAnswer)

    private fun source(modelDir: File, settings: Settings?, targetName: String?): Source {
        val now = System.currentTimeMillis() / 1000
        if (settings != null) {
            val service = ServiceClient(settings.serverUrl, settings.apiKey)
            val device = DeviceClient(service, targetName ?: settings.target, Session.cacheDir(filesDir))
            val file = device.setup()
            val manifest = device.manifest
            val local = File(modelDir, ModelDir.REQUEST)
            val body = if (local.isFile) RequestBody.fromJson(local.readText()) else BenchmarkInputs.defaultBody(manifest, now)
            val swap = { if (body != null) service.generate(body) else service.baseSlots() }
            return Source(manifest, device.target, file, device.slots.base, service, body, swap)
        }
        val models = ModelDir(modelDir)
        val target = models.target(targetName, Programs.SUPPORTED)
        val base = models.baseAnswer()
        return Source(models.manifest, target, models.programFile(target), base.check(models.manifest), null,
            models.body(now)) { base }
    }

    private fun run(modelDir: File, settings: Settings?, targetName: String?, warmUp: Int, iterations: Int): List<BenchmarkRecord> {
        val src = source(modelDir, settings, targetName)
        val model = BenchmarkModel.of(src.manifest, src.target)
        val device = DeviceFacts.info(this)
        val (program, loadMs) = try {
            Stopwatch.timed { Programs.load(src.manifest, src.target, src.file) }
        } catch (e: Exception) {
            Log.e(TAG, "model load failed", e)
            return listOf(BenchmarkRecord(model, Metrics.LOAD_STATUS, 1.0, device))
        }
        program.use {
            val records = ArrayList<BenchmarkRecord>()
            fun record(metric: String, value: Double) { // a non-finite value: the record is omitted
                val r = BenchmarkRecords.of(model, metric, value, device)
                if (r != null) records.add(r) else Log.w(TAG, "$metric is $value: record omitted")
            }
            var peakPss = DeviceFacts.pssMb()
            val inputs = BenchmarkInputs.of(src.manifest, src.body)

            // Forward latency: num_iter timed calls after num_warm_up_iter untimed ones, Base's slots bound.
            val args = CallAssembly.arguments(src.manifest, inputs, src.base, src.target)
            val samples = BenchmarkSampling.forwardLatency(warmUp, iterations) { program.run(args) }
            peakPss = maxOf(peakPss, DeviceFacts.pssMb())
            records.addAll(BenchmarkRecords.latency(model, device, LatencyStats.of(samples)))
            record(Metrics.MODEL_LOAD, loadMs)
            record(Metrics.LOAD_STATUS, 0.0)

            // Slot swap: answer bytes in memory -> decode + check + install -> first forward with them (core's rule).
            try {
                val answer = src.swap() // fetched untimed
                val slots = DeviceSlots(src.manifest, src.base)
                record(Metrics.SLOT_SWAP, BenchmarkSampling.slotSwapLatency(slots, answer) { installed ->
                    program.run(CallAssembly.arguments(src.manifest, inputs, installed, src.target))
                })
            } catch (e: DuetException) {
                Log.w(TAG, "slot swap not measured: ${e.reason.id}: ${e.message}")
            }

            // Generate round trip: POST /v1/generate until the answer is checked, not installed (core's rule).
            if (src.service != null && src.body != null) {
                try {
                    record(Metrics.GENERATE_ROUND_TRIP, BenchmarkSampling.generateRoundTrip(src.service, src.manifest, src.body))
                } catch (e: DuetException) {
                    Log.w(TAG, "generate round trip not measured: ${e.reason.id}: ${e.message}")
                }
            }
            peakPss = maxOf(peakPss, DeviceFacts.pssMb())
            record(Metrics.RAM_PSS, peakPss)
            return records
        }
    }

    companion object {
        const val TAG = "DuetBenchmark"
    }
}

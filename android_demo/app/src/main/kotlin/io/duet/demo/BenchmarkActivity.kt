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
import io.duet.core.BenchmarkModel
import io.duet.core.BenchmarkRecord
import io.duet.core.BenchmarkRecords
import io.duet.core.BodyField
import io.duet.core.CallAssembly
import io.duet.core.DeviceSlots
import io.duet.core.ExampleInputs
import io.duet.core.LatencyStats
import io.duet.core.Manifest
import io.duet.core.Metrics
import io.duet.core.Recommendation
import io.duet.core.RequestBody
import io.duet.core.ServiceClient
import io.duet.core.Sha256
import io.duet.core.SlotAnswer
import io.duet.core.SlotBlob
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

    /** Where the program, its manifest and its slots come from: the service when a URL is given, else model_dir. */
    private class Source(val manifest: Manifest, val target: Target, val file: File, val base: SlotSet,
                         val service: ServiceClient?, val baseBlob: ByteArray)

    private fun source(modelDir: File, settings: Settings?, targetName: String?): Source {
        if (settings != null) {
            val service = ServiceClient(settings.serverUrl, settings.apiKey)
            val manifest = service.manifest()
            val target = manifest.target(targetName ?: settings.target)
            val file = service.download(manifest, target.name, File(filesDir, "programs")).file
            val answer = service.baseSlots()
            return Source(manifest, target, file, answer.check(manifest), service, answer.blob)
        }
        // Offline: model_dir holds manifest.json, the target's file and base.safetensors (GET /v1/slots/base).
        val manifest = Manifest.parse(File(modelDir, "manifest.json").readBytes())
        val target = manifest.target(targetName ?: Programs.SUPPORTED.first { name ->
            manifest.targets[name]?.let { File(modelDir, it.file).isFile } ?: false
        })
        val blob = File(modelDir, "base.safetensors").readBytes()
        return Source(manifest, target, File(modelDir, target.file), SlotBlob.decode(blob, manifest), null, blob)
    }

    /** The generate body: model_dir/request.json when there is one, else recent items 1..L for a recommendation program. */
    private fun body(modelDir: File, manifest: Manifest): RequestBody? {
        val file = File(modelDir, "request.json")
        if (file.isFile) return RequestBody.fromJson(file.readText())
        val history = manifest.inputs.firstOrNull { it.name == Recommendation.HISTORY } ?: return null
        return Recommendation.body(manifest, "benchmark", (1..history.shape.last()).toList(), System.currentTimeMillis() / 1000)
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
            var peakPss = DeviceFacts.pssMb()
            val body = body(modelDir, src.manifest)
            val inputs = ExampleInputs.of(src.manifest).toMutableMap()
            if (body != null && inputs.containsKey(Recommendation.HISTORY)) {
                val items = (body.fields.firstOrNull { it.name == "items" } as? BodyField.Integers)?.values()
                if (items != null) inputs[Recommendation.HISTORY] = Recommendation.history(src.manifest, items.map { it.toInt() })
            }
            val args = CallAssembly.arguments(src.manifest, inputs, src.base, src.target)
            val samples = Stopwatch.samples(warmUp, iterations) { program.run(args) }
            peakPss = maxOf(peakPss, DeviceFacts.pssMb())
            val records = ArrayList(BenchmarkRecords.latency(model, device, LatencyStats.of(samples)))
            records.add(BenchmarkRecord(model, Metrics.MODEL_LOAD, loadMs, device))
            records.add(BenchmarkRecord(model, Metrics.LOAD_STATUS, 0.0, device))

            // Slot swap: answer bytes in memory -> checked -> arguments -> first forward with them done.
            val answers = swapAnswers(src, body)
            val swaps = answers.map { answer ->
                Stopwatch.timed {
                    val slots = answer.check(src.manifest)
                    program.run(CallAssembly.arguments(src.manifest, inputs, slots, src.target))
                }.second
            }
            records.add(BenchmarkRecord(model, Metrics.SLOT_SWAP, swaps.drop(1).ifEmpty { swaps }.average(), device))

            // Generate round trip: POST /v1/generate until the answer is checked (first call not counted).
            if (src.service != null && body != null) {
                val slots = DeviceSlots(src.manifest, src.base)
                val trips = (0..ROUND_TRIPS).map { slots.refresh(src.service, body) }
                trips.firstOrNull { !it.installed }?.let { throw IllegalStateException("generate refused: ${it.refusal}") }
                records.add(BenchmarkRecord(model, Metrics.GENERATE_ROUND_TRIP, trips.drop(1).map { it.roundTripMs }.average(), device))
            }
            peakPss = maxOf(peakPss, DeviceFacts.pssMb())
            records.add(BenchmarkRecord(model, Metrics.RAM_PSS, peakPss, device))
            return records
        }
    }

    /** Answers to swap in: generated ones from the service (fetched untimed), else Base's blob from model_dir (its
     *  digest and version filled in, so that both ways time the same checks). */
    private fun swapAnswers(src: Source, body: RequestBody?): List<SlotAnswer> =
        if (src.service != null && body != null) List(SWAPS + 1) { src.service.generate(body) }
        else List(SWAPS + 1) { SlotAnswer(src.baseBlob, Sha256.hex(src.baseBlob), src.manifest.modelVersion) }

    companion object {
        const val TAG = "DuetBenchmark"
        const val SWAPS = 5
        const val ROUND_TRIPS = 5
    }
}

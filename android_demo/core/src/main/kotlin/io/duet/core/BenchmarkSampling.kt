/** The benchmark's sampling rules (the same in the Kotlin and Swift cores), its program inputs and its offline model_dir. */
package io.duet.core

import java.io.File
import java.io.IOException

/**
 * How each benchmark metric is sampled; the apps only supply the program call. Times in ms.
 *
 * - forward latency: [forwardLatency], `num_iter` timed calls after `num_warm_up_iter` untimed ones;
 * - slot swap: [slotSwapLatency], the p50 of [SWAP_TIMED] timed repetitions after [SWAP_WARM_UP] warm-up of
 *   (answer bytes in memory -> decode + check + install -> first forward with the installed slots done);
 * - generate round trip: [generateRoundTrip], the p50 of [ROUND_TRIP_TIMED] timed repetitions after
 *   [ROUND_TRIP_WARM_UP] warm-up of (POST /v1/generate -> answer decoded and checked, not installed).
 */
object BenchmarkSampling {
    const val SWAP_WARM_UP = 1
    const val SWAP_TIMED = 5
    const val ROUND_TRIP_WARM_UP = 1
    const val ROUND_TRIP_TIMED = 5

    /** The forward latency samples: [warmUp] untimed calls of [forward], then [iterations] timed ones. */
    fun forwardLatency(warmUp: Int, iterations: Int, forward: () -> Unit): List<Double> =
        Stopwatch.samples(warmUp, iterations, forward)

    /**
     * The slot swap latency: [answer] (bytes already in memory) checked and installed into [slots], then [forward]
     * called with the installed slots (building its arguments included); p50 of 5 after 1 warm-up. A refused answer
     * throws its [DuetException].
     */
    fun slotSwapLatency(slots: DeviceSlots, answer: SlotAnswer, forward: (SlotSet) -> Unit): Double =
        p50(Stopwatch.samples(SWAP_WARM_UP, SWAP_TIMED) { forward(slots.install(answer)) })

    /**
     * The generate round trip: POST /v1/generate with [body] until the answer is decoded and checked against
     * [manifest] (nothing installed); p50 of 5 after 1 warm-up. A refusal throws its [DuetException].
     */
    fun generateRoundTrip(service: ServiceClient, manifest: Manifest, body: RequestBody): Double =
        generateRoundTrip(manifest) { service.generate(body) }

    internal fun generateRoundTrip(manifest: Manifest, generate: () -> SlotAnswer): Double =
        p50(Stopwatch.samples(ROUND_TRIP_WARM_UP, ROUND_TRIP_TIMED) { generate().check(manifest) })

    private fun p50(samples: List<Double>): Double = LatencyStats.percentile(samples.sorted(), 50.0)
}

/** What the benchmark feeds the program. */
object BenchmarkInputs {
    /**
     * The generate body when none is given: for a recommendation program, recent items 1..L (L = the `history`
     * length) of device [Recommendation.BENCHMARK_DEVICE_ID], as [Recommendation.body] builds it (trimmed to the
     * schema's maxItems); null for other programs.
     */
    fun defaultBody(manifest: Manifest, nowSeconds: Long): RequestBody? {
        val history = manifest.inputs.firstOrNull { it.name == Recommendation.HISTORY } ?: return null
        val length = Math.max(1L, history.numel).toInt()
        return Recommendation.body(manifest, Recommendation.BENCHMARK_DEVICE_ID, (1..length).toList(), nowSeconds)
    }

    /** The program inputs: [ExampleInputs], with `history` from the body's `items` when there are both. */
    fun of(manifest: Manifest, body: RequestBody?): Map<String, TensorData> {
        val inputs = LinkedHashMap(ExampleInputs.of(manifest))
        val items = (body?.fields?.firstOrNull { it.name == "items" } as? BodyField.Integers)?.values()
        if (items != null && items.isNotEmpty() && inputs.containsKey(Recommendation.HISTORY)) {
            inputs[Recommendation.HISTORY] = Recommendation.history(manifest, items.map { it.toInt() })
        }
        return inputs
    }
}

/**
 * An offline benchmark directory (pushed with adb): `manifest.json`, the target's program file, `base.safetensors`
 * (the body of GET /v1/slots/base) and optionally `request.json` (a generate body).
 */
class ModelDir(val dir: File) {
    /** The checked manifest.json of the directory. */
    val manifest: Manifest = Manifest.parse(read(MANIFEST, "the export's manifest"))

    /**
     * The target to run: [requested] when given, else the first of [runnable] whose file is in the directory; a
     * [Reason.MANIFEST] error when there is none.
     */
    fun target(requested: String?, runnable: List<String>): Target {
        if (requested != null && requested != "") return manifest.target(requested)
        val name = runnable.firstOrNull { name -> manifest.targets[name]?.let { File(dir, it.file).isFile } ?: false }
            ?: refuse(Reason.MANIFEST, "$dir holds the file of none of the targets ${runnable.joinToString(", ")}")
        return manifest.target(name)
    }

    /** The program file of [target] in the directory. */
    fun programFile(target: Target): File = File(dir, target.file)

    /** base.safetensors as a slot answer whose digest and model version are filled in (so it is checked like one). */
    fun baseAnswer(): SlotAnswer {
        val blob = read(BASE, "Base's slots (GET /v1/slots/base)")
        return SlotAnswer(blob, Sha256.hex(blob), manifest.modelVersion, "float32")
    }

    /** request.json when there is one, else [BenchmarkInputs.defaultBody]. */
    fun body(nowSeconds: Long): RequestBody? {
        val file = File(dir, REQUEST)
        return if (file.isFile) RequestBody.fromJson(file.readText()) else BenchmarkInputs.defaultBody(manifest, nowSeconds)
    }

    private fun read(name: String, what: String): ByteArray = try {
        File(dir, name).readBytes()
    } catch (e: IOException) {
        refuse(Reason.MANIFEST, "$dir/$name ($what) cannot be read: ${e.message}")
    }

    companion object {
        const val MANIFEST = "manifest.json"
        const val BASE = "base.safetensors"
        const val REQUEST = "request.json"
    }
}

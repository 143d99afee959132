/** Where a benchmark's program, manifest and slots come from (service or adb-pushed model_dir), its options, and the whole run. */
package io.duet.core

import java.io.File
import java.io.IOException

/** An intent extra (or any option) that is missing its rules: the message says which and what was given. */
class OptionsException(message: String) : IllegalArgumentException(message)

/**
 * The benchmark's options, read from the activity's intent extras (the names of ExecuTorch's minibench where it has
 * them). A [serverUrl] from the intent only ever gets an [apiKey] from the same intent, never a stored or built-in one.
 */
data class BenchmarkOptions(
    val modelDir: String = DEFAULT_MODEL_DIR,
    /** num_iter: timed forward calls, at least 1. */
    val iterations: Int = DEFAULT_ITERATIONS,
    /** num_warm_up_iter: untimed forward calls before them. */
    val warmUp: Int = DEFAULT_WARM_UP,
    /** num_threads: the CPU threads the runtime is given (set explicitly, recorded). */
    val threads: Int = DEFAULT_THREADS,
    /** target: "executorch" or "tflite"; null: the first the app runs that the export has. */
    val target: String? = null,
    /** server_url: online (DeviceClient.setup) when set, else offline from [modelDir]. */
    val serverUrl: String? = null,
    val apiKey: String? = null
) {
    companion object {
        const val DEFAULT_MODEL_DIR = "/data/local/tmp/duet"
        const val DEFAULT_ITERATIONS = 50
        const val DEFAULT_WARM_UP = 10
        const val DEFAULT_THREADS = 1
        private const val MOST_CALLS = 100_000
        private const val MOST_THREADS = 64

        /** The options of [extras] (intent extras by name); an [OptionsException] names the first bad one. */
        fun fromExtras(extras: Map<String, Any?>): BenchmarkOptions {
            val url = text(extras, "server_url")
            val key = text(extras, "api_key")
            if (url != null && key == null) {
                throw OptionsException("server_url needs api_key in the same intent (a URL from an intent never gets " +
                    "a stored or built-in key)")
            }
            return BenchmarkOptions(text(extras, "model_dir") ?: DEFAULT_MODEL_DIR,
                count(extras, "num_iter", DEFAULT_ITERATIONS, 1, MOST_CALLS),
                count(extras, "num_warm_up_iter", DEFAULT_WARM_UP, 0, MOST_CALLS),
                count(extras, "num_threads", DEFAULT_THREADS, 1, MOST_THREADS),
                text(extras, "target"), url, key)
        }

        private fun text(extras: Map<String, Any?>, name: String): String? = when (val v = extras[name]) {
            null -> null
            is String -> v.trim().takeIf { it.isNotEmpty() }
            else -> throw OptionsException("$name must be text (adb: --es $name ...), got ${v.javaClass.simpleName} $v")
        }

        private fun count(extras: Map<String, Any?>, name: String, default: Int, least: Int, most: Int): Int {
            val v = extras[name] ?: return default
            if (v !is Int) throw OptionsException("$name must be a whole number (adb: --ei $name N), got ${v.javaClass.simpleName} $v")
            if (v < least || v > most) throw OptionsException("$name must be from $least to $most, got $v")
            return v
        }
    }
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

    /** `request.json` of [dir] when it is there, else [defaultBody]. */
    fun body(dir: File, manifest: Manifest, nowSeconds: Long): RequestBody? {
        val file = File(dir, ModelDir.REQUEST)
        return if (file.isFile) RequestBody.fromJson(file.readText()) else defaultBody(manifest, nowSeconds)
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

    /**
     * The target to run: [requested] when given, else the first of [runnable] that [manifest] has and [present]
     * says is there; a [Reason.MANIFEST] error when there is none.
     */
    fun target(manifest: Manifest, requested: String?, runnable: List<String>, present: (Target) -> Boolean): Target {
        if (requested != null && requested != "") return manifest.target(requested)
        val name = runnable.firstOrNull { name -> manifest.targets[name]?.let(present) ?: false }
            ?: refuse(Reason.MANIFEST, "none of the targets ${runnable.joinToString(", ")} is there to run " +
                "(the export has ${manifest.targets.keys.joinToString(", ")})")
        return manifest.target(name)
    }
}

/**
 * An offline benchmark directory (pushed with adb): `manifest.json`, the target's program file, `base.safetensors`
 * (the body of GET /v1/slots/base) and optionally `request.json` (a generate body).
 */
class ModelDir(val dir: File) {
    /** The checked manifest.json of the directory. */
    val manifest: Manifest = Manifest.parse(read(MANIFEST, "the export's manifest"))

    /** The target to run: [requested], else the first of [runnable] whose file is in the directory. */
    fun target(requested: String?, runnable: List<String>): Target =
        BenchmarkInputs.target(manifest, requested, runnable) { File(dir, it.file).isFile }

    /** The program file of [target] in the directory. */
    fun programFile(target: Target): File = File(dir, target.file)

    /** base.safetensors as a slot answer whose digest and model version are filled in (so it is checked like one). */
    fun baseAnswer(): SlotAnswer {
        val blob = read(BASE, "Base's slots (GET /v1/slots/base)")
        return SlotAnswer(blob, Sha256.hex(blob), manifest.modelVersion, "float32")
    }

    /** request.json when there is one, else [BenchmarkInputs.defaultBody]. */
    fun body(nowSeconds: Long): RequestBody? = BenchmarkInputs.body(dir, manifest, nowSeconds)

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

/**
 * The program file, manifest, Base's slots and the answers a run swaps in: from the service ([BenchmarkOptions.serverUrl]:
 * the manifest, then [DeviceClient.setup] into [cacheDir]) or from [BenchmarkOptions.modelDir] ([ModelDir]).
 */
class BenchmarkSource private constructor(
    val manifest: Manifest,
    val target: Target,
    val programFile: File,
    val base: SlotSet,
    /** The service, online; null offline. */
    val service: ServiceClient?,
    /** The generate body (request.json, or the default one); null for a program without one. */
    val body: RequestBody?,
    /** The pinned signing key, checked against every answer. */
    val pinnedKey: String?,
    private val swap: () -> SlotAnswer
) {
    /** The answer the slot swap installs: a generated one online (Base's when there is no body), base.safetensors offline. */
    fun swapAnswer(): SlotAnswer = swap()

    /** The record's benchmarkModel. */
    val model: BenchmarkModel get() = BenchmarkModel.of(manifest, target)

    companion object {
        /** Open the source [options] name; a [DuetException] when the service or the directory refuses. */
        fun open(options: BenchmarkOptions, cacheDir: File, runnable: List<String>, nowSeconds: Long,
                 pinnedKey: String? = null): BenchmarkSource {
            val dir = File(options.modelDir)
            val url = options.serverUrl
            if (url != null) {
                val service = ServiceClient(url, options.apiKey ?: "", pinnedKey = pinnedKey)
                val name = BenchmarkInputs.target(service.manifest(), options.target, runnable) { true }.name
                val device = DeviceClient(service, name, cacheDir)
                val file = device.setup()
                val manifest = device.manifest
                val body = BenchmarkInputs.body(dir, manifest, nowSeconds)
                return BenchmarkSource(manifest, device.target, file, device.slots.base, service, body, pinnedKey) {
                    if (body != null) service.generate(body) else service.baseSlots()
                }
            }
            val models = ModelDir(dir)
            SigningPin.check(models.manifest, pinnedKey)
            val target = models.target(options.target, runnable)
            val base = models.baseAnswer()
            return BenchmarkSource(models.manifest, target, models.programFile(target), base.check(models.manifest, pinnedKey),
                null, models.body(nowSeconds), pinnedKey) { base }
        }
    }
}

/** The host of a run from a [BenchmarkSource]: the app gives the runtime's loader and the memory probe. */
class SourceHost(
    private val source: BenchmarkSource,
    private val loader: (BenchmarkSource) -> BenchmarkProgram,
    private val memory: () -> Double
) : BenchmarkHost {
    override fun load(): BenchmarkProgram = loader(source)
    override fun memoryMb(): Double = memory()
    override val canGenerate: Boolean get() = source.service != null && source.body != null
    override fun generate(): SlotAnswer = source.service!!.generate(source.body!!)
    override fun swapAnswer(): SlotAnswer = source.swapAnswer()
}

/** The whole adb-started benchmark, as BenchmarkActivity runs it: options, source, run; every failure a record. */
object Benchmarks {
    /** The benchmarkModel of records written before a program was chosen (minibench's fallback has empty fields). */
    val UNKNOWN_MODEL = BenchmarkModel("benchmark", "", "")

    /**
     * The records of one benchmark: [extras] read ([BenchmarkOptions.fromExtras]), the source opened, the sequence
     * run ([BenchmarkRun]) with [loader] (the app's runtime adapter, given the threads) and [memory] (MB). Never
     * throws: bad options, a refused setup or load each end in a failure record ([Metrics.BENCHMARK_FAILED]).
     */
    fun run(extras: Map<String, Any?>, cacheDir: File, runnable: List<String>, device: DeviceInfo,
            loader: (BenchmarkSource, Int) -> BenchmarkProgram, memory: () -> Double, memoryMetrics: MemoryMetrics,
            pinnedKey: String? = null, nowSeconds: Long = System.currentTimeMillis() / 1000,
            clock: Clock = SystemClock): List<BenchmarkRecord> {
        val options = try {
            BenchmarkOptions.fromExtras(extras)
        } catch (e: OptionsException) {
            return listOf(BenchmarkRecords.failure(UNKNOWN_MODEL, device, "options", e))
        }
        val source = try {
            BenchmarkSource.open(options, cacheDir, runnable, nowSeconds, pinnedKey)
        } catch (e: Exception) {
            return listOf(BenchmarkRecords.failure(UNKNOWN_MODEL, device, "setup", e))
        }
        val run = BenchmarkRun(source.manifest, source.target, source.base, BenchmarkInputs.of(source.manifest, source.body),
            options.warmUp, options.iterations, memoryMetrics, pinnedKey, clock)
        return run.run(SourceHost(source, { loader(it, options.threads) }, memory), source.model, device)
    }
}

/** The benchmark's one sampling sequence (docs/formats.md, "Benchmark sampling"), the same in DuetKit; apps supply runtime calls. */
package io.duet.core

import java.io.Closeable

/** A runtime's refusal to load a program, with the runtime's own error code (ExecuTorch's Error; -1 when it has none). */
class RuntimeFailure(val code: Int, message: String, cause: Throwable? = null) : Exception(message, cause)

/** A monotonic clock in nanoseconds (tests script one). */
interface Clock {
    fun nanos(): Long
}

/** System.nanoTime. */
object SystemClock : Clock {
    override fun nanos(): Long = System.nanoTime()
}

/** One forward call whose runtime inputs are already built. */
interface PreparedCall {
    /** Run the program once; its output as floats. */
    fun run(): FloatArray
}

/** A program loaded in its runtime. Not thread-safe: one caller at a time. */
interface BenchmarkProgram : Closeable {
    /** Build the runtime's inputs from [args] (CallAssembly order and names): tensors, buffers or features. */
    fun prepare(args: List<CallArgument>): PreparedCall

    /** How the runtime was set up, recorded beside the measurements: (metric, value), e.g. num_threads 1. */
    val settings: List<Pair<String, Double>>
}

/** What one run needs from the app and the service. */
interface BenchmarkHost {
    /** Load the program in its runtime; a [RuntimeFailure] carries the runtime's error code. */
    fun load(): BenchmarkProgram

    /** The platform's memory measure now, in MB (Android: PSS; iOS: phys_footprint). */
    fun memoryMb(): Double

    /** Whether there is a service to generate from (online, with a body). */
    val canGenerate: Boolean

    /** POST /v1/generate once: the raw answer (checked by the run). */
    fun generate(): SlotAnswer

    /** The slot answer the slot swap installs, fetched once before it (untimed). */
    fun swapAnswer(): SlotAnswer
}

/**
 * The sequence, in this order (every step the same in DuetKit's BenchmarkRun, checked against the golden `sampling`
 * scenarios): memory probe; the load, timed (a failure: `model_load_time`, `load_status` = the runtime's code and a
 * failure record, nothing else); memory probe; Base's slots and the inputs prepared once, untimed; [warmUp] untimed
 * forward calls; [iterations] forward calls, each timed alone (the timed region holds the runtime's call only);
 * memory probe (minibench's `ram_pss_usage(mb)`: this one minus the first); with a service, the generate round trip:
 * [ROUND_TRIP_WARM_UP] + [ROUND_TRIP_TIMED] repetitions of (POST, the answer checked), p50 of the timed; the swap
 * answer fetched untimed; the slot swap: [SWAP_WARM_UP] + [SWAP_TIMED] repetitions of (the answer checked and
 * installed, the runtime's inputs built with the installed slots, one forward call), p50 of the timed; memory probe.
 * A step that fails leaves its record out and adds a failure record ([Metrics.BENCHMARK_FAILED]); the run goes on.
 */
class BenchmarkRun(
    val manifest: Manifest,
    /** The runtime's names of the arguments (null: positions). */
    val target: Target?,
    /** Base's slots: bound for the forward latency, and the state every swap starts from. */
    val base: SlotSet,
    /** The program inputs of every call (BenchmarkInputs.of). */
    val inputs: Map<String, TensorData>,
    /** num_warm_up_iter. */
    val warmUp: Int,
    /** num_iter. */
    val iterations: Int,
    val memory: MemoryMetrics,
    /** The signing key the client is pinned to, if any (every answer is checked with it). */
    val pinnedKey: String? = null,
    private val clock: Clock = SystemClock
) {
    init {
        require(warmUp >= 0 && iterations >= 1) { "need num_warm_up_iter >= 0 and num_iter >= 1, got $warmUp and $iterations" }
    }

    /** Run the sequence against [host]; the records of benchmark_results.json in their order. Never throws. */
    fun run(host: BenchmarkHost, model: BenchmarkModel, device: DeviceInfo): List<BenchmarkRecord> {
        val out = Recorder(model, device)
        val probes = arrayListOf(host.memoryMb())
        val loadStart = clock.nanos()
        val program = try {
            host.load()
        } catch (e: Exception) {
            out.add(Metrics.MODEL_LOAD, sinceMs(loadStart))
            out.add(Metrics.LOAD_STATUS, (if (e is RuntimeFailure) e.code else -1).toDouble())
            out.failure("load", e)
            return out.records
        }
        val loadMs = sinceMs(loadStart)
        program.use {
            probes.add(host.memoryMb())
            val call = try {
                program.prepare(CallAssembly.arguments(manifest, inputs, base, target))
            } catch (e: Exception) {
                out.failure("prepare", e)
                null
            }
            val samples = call?.let { forwardLatencies(it, out) }
            probes.add(host.memoryMb())
            val roundTrip = if (host.canGenerate) measured("generate_round_trip", out) { roundTrip(host) } else null
            val swap = if (samples != null) measured("slot_swap", out) { slotSwap(host, program) } else null
            probes.add(host.memoryMb())
            val records = ArrayList<BenchmarkRecord>()
            if (samples != null) records.addAll(BenchmarkRecords.latency(out.model, out.device, LatencyStats.of(samples)))
            records.addAll(listOfNotNull(
                BenchmarkRecords.of(out.model, Metrics.MODEL_LOAD, loadMs, out.device),
                BenchmarkRecords.of(out.model, Metrics.LOAD_STATUS, 0.0, out.device),
                BenchmarkRecords.of(out.model, memory.usage, probes[2] - probes[0], out.device),
                BenchmarkRecords.of(out.model, memory.peak, probes.fold(probes[0]) { a, b -> Math.max(a, b) }, out.device),
                roundTrip?.let { BenchmarkRecords.of(out.model, Metrics.GENERATE_ROUND_TRIP, it, out.device) },
                swap?.let { BenchmarkRecords.of(out.model, Metrics.SLOT_SWAP, it, out.device) }))
            for ((metric, value) in program.settings) BenchmarkRecords.of(out.model, metric, value, out.device)?.let { records.add(it) }
            return records + out.records
        }
    }

    private fun forwardLatencies(call: PreparedCall, out: Recorder): List<Double>? = measured("forward", out) {
        repeat(warmUp) { call.run() }
        List(iterations) { timedMs { call.run() } }
    }

    private fun roundTrip(host: BenchmarkHost): Double =
        p50(repetitions(ROUND_TRIP_WARM_UP, ROUND_TRIP_TIMED) { host.generate().check(manifest, pinnedKey) })

    private fun slotSwap(host: BenchmarkHost, program: BenchmarkProgram): Double {
        val answer = host.swapAnswer()
        val slots = DeviceSlots(manifest, base, pinnedKey)
        return p50(repetitions(SWAP_WARM_UP, SWAP_TIMED) {
            program.prepare(CallAssembly.arguments(manifest, inputs, slots.install(answer), target)).run()
        })
    }

    private fun repetitions(warm: Int, timed: Int, block: () -> Unit): List<Double> =
        List(warm + timed) { timedMs(block) }.drop(warm)

    private fun timedMs(block: () -> Unit): Double {
        val start = clock.nanos()
        block()
        return sinceMs(start)
    }

    private fun sinceMs(start: Long): Double = (clock.nanos() - start) / 1e6

    private fun <T> measured(step: String, out: Recorder, block: () -> T): T? = try {
        block()
    } catch (e: Exception) {
        out.failure(step, e)
        null
    }

    private fun p50(samples: List<Double>): Double = LatencyStats.percentile(samples.sorted(), 50.0)

    companion object {
        const val SWAP_WARM_UP = 1
        const val SWAP_TIMED = 5
        const val ROUND_TRIP_WARM_UP = 1
        const val ROUND_TRIP_TIMED = 5
    }
}

/** The failure records of a run (the measured ones are assembled in their fixed order at the end). */
internal class Recorder(val model: BenchmarkModel, val device: DeviceInfo) {
    val records = ArrayList<BenchmarkRecord>()

    fun add(metric: String, value: Double) {
        BenchmarkRecords.of(model, metric, value, device)?.let { records.add(it) }
    }

    /** A failure record: "<step>: <what failed>". */
    fun failure(step: String, e: Exception) {
        records.add(BenchmarkRecords.failure(model, device, step, e))
    }
}

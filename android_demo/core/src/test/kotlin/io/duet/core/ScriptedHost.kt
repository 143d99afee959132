/** A scripted program, service and clock for BenchmarkRun: each operation takes the time its script says and is traced. */
package io.duet.core

import com.google.gson.JsonObject

/**
 * Plays a golden `sampling` scenario's script: time advances only by the scripted durations (ms, kept in whole
 * nanoseconds), every clock read and host operation is appended to [trace] ("clock", "memory", "load", "prepare:base",
 * "prepare:swap", "forward", "generate", "fetch_swap"), so a run's trace shows what lies inside each timed region.
 */
class ScriptedHost(
    private val loadMs: Double,
    private val loadErrorCode: Int?,
    private val prepareMs: Double,
    forwardMs: List<Double>,
    generateMs: List<Double>,
    private val fetchSwapMs: Double,
    memoryMb: List<Double>,
    override val canGenerate: Boolean,
    private val generated: SlotAnswer,
    private val swap: SlotAnswer,
    private val settings: List<Pair<String, Double>>,
    /** Slot sets by the label their prepare is traced with. */
    private val labels: Map<String, SlotSet>
) : BenchmarkHost, Clock {
    val trace = ArrayList<String>()

    /** The slot set traced as [label]. */
    fun labelled(label: String): SlotSet = labels.getValue(label)
    private var now = 0L
    private val forwards = forwardMs.iterator()
    private val generates = generateMs.iterator()
    private val memory = memoryMb.iterator()

    private fun advance(ms: Double) {
        now += Math.round(ms * 1e6)
    }

    override fun nanos(): Long {
        trace.add("clock")
        return now
    }

    override fun memoryMb(): Double {
        trace.add("memory")
        return memory.next()
    }

    override fun load(): BenchmarkProgram {
        trace.add("load")
        advance(loadMs)
        if (loadErrorCode != null) throw RuntimeFailure(loadErrorCode, "scripted: the runtime refuses the program")
        return program
    }

    override fun generate(): SlotAnswer {
        trace.add("generate")
        advance(generates.next())
        return generated
    }

    override fun swapAnswer(): SlotAnswer {
        trace.add("fetch_swap")
        advance(fetchSwapMs)
        return swap
    }

    private val program = object : BenchmarkProgram {
        override val settings: List<Pair<String, Double>> get() = this@ScriptedHost.settings

        override fun prepare(args: List<CallArgument>): PreparedCall {
            trace.add("prepare:" + label(args))
            advance(prepareMs)
            return object : PreparedCall {
                override fun run(): FloatArray {
                    trace.add("forward")
                    advance(forwards.next())
                    return FloatArray(0)
                }
            }
        }

        override fun close() {}
    }

    /** Which slot set the call binds: the label whose slots equal the arguments after the inputs. */
    private fun label(args: List<CallArgument>): String {
        for ((name, slots) in labels) {
            val tail = args.takeLast(slots.specs.size)
            if (tail.indices.all { tail[it].data.floatValues().contentEquals(slots.floats(it)) }) return name
        }
        return "other"
    }

    companion object {
        /**
         * The host of a golden scenario's [script] (expected.json "sampling"): blobs by file name from tests/golden,
         * Base's slots from slots-f32.safetensors, answers with correct headers (or a wrong sha256 when the script says).
         */
        fun of(script: JsonObject, manifest: Manifest, canGenerate: Boolean): ScriptedHost {
            fun list(key: String) = script.getAsJsonArray(key).map { it.asDouble }
            fun answer(file: String, shaOk: Boolean = true): SlotAnswer {
                val blob = Golden.file(file).readBytes()
                return SlotAnswer(blob, if (shaOk) Sha256.hex(blob) else "0".repeat(64), manifest.modelVersion, "float32")
            }
            val swapFile = script.get("swap_answer").asString
            val labels = linkedMapOf("base" to SlotBlob.decode(Golden.file("slots-f32.safetensors").readBytes(), manifest),
                "swap" to SlotBlob.decode(Golden.file(swapFile).readBytes(), manifest))
            return ScriptedHost(script.get("load_ms").asDouble, script.get("load_error_code")?.asInt, script.get("prepare_ms").asDouble,
                list("forward_ms"), list("generate_ms"), script.get("fetch_swap_ms").asDouble, list("memory_mb"), canGenerate,
                answer(script.get("generate_answer").asString), answer(swapFile, script.get("swap_sha256_ok").asBoolean),
                script.getAsJsonArray("settings").map { Pair(it.asJsonArray[0].asString, it.asJsonArray[1].asDouble) }, labels)
        }
    }
}

/** A loaded device program (the core's BenchmarkProgram) and the runtime chooser; two runtimes implement it. */
package io.duet.demo

import io.duet.core.BenchmarkProgram
import io.duet.core.CallArgument
import io.duet.core.LiteRtBinding
import io.duet.core.Manifest
import io.duet.core.Target
import java.io.File

/** One program file loaded in its runtime. Not thread-safe: call it from one thread. */
interface Program : BenchmarkProgram {
    /** The benchmark backend name: "xnnpack" (ExecuTorch) or "litert". */
    val backend: String

    /** Run once with [args] (call_signature order; [CallArgument.runtimeName] for runtimes that name inputs). */
    fun run(args: List<CallArgument>): FloatArray = prepare(args).run()
}

/** Chooses the runtime of a manifest target. */
object Programs {
    /** The targets this app can run, in the order the benchmark picks them. */
    val SUPPORTED = listOf("executorch", "tflite")

    /**
     * Load [file] (the downloaded file of [target]) in its runtime with [threads] CPU threads; a runtime's refusal
     * is the core's RuntimeFailure with the runtime's code.
     */
    fun load(manifest: Manifest, target: Target, file: File, threads: Int): Program = when (target.name) {
        "executorch" -> ExecuTorchProgram(file, threads)
        "tflite" -> LiteRtProgram(file, LiteRtBinding.of(manifest, target), threads)
        else -> throw IllegalArgumentException("target '${target.name}' does not run on Android; choose one of $SUPPORTED")
    }
}

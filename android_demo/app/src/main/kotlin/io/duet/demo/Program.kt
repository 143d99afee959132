/** A loaded device program: one call with the arguments of CallAssembly, the output as floats; two runtimes implement it. */
package io.duet.demo

import io.duet.core.CallArgument
import io.duet.core.Manifest
import io.duet.core.Target
import java.io.Closeable
import java.io.File

/** One program file loaded in its runtime. Not thread-safe: call it from one thread. */
interface Program : Closeable {
    /** The benchmark backend name: "xnnpack" (ExecuTorch) or "litert". */
    val backend: String

    /** Run once with [args] (call_signature order; [CallArgument.runtimeName] for runtimes that name inputs). */
    fun run(args: List<CallArgument>): FloatArray
}

/** Chooses the runtime of a manifest target. */
object Programs {
    /** The targets this app can run. */
    val SUPPORTED = listOf("executorch", "tflite")

    /** Load [file] (the downloaded file of [target]) in its runtime. */
    fun load(manifest: Manifest, target: Target, file: File): Program = when (target.name) {
        "executorch" -> ExecuTorchProgram(file)
        "tflite" -> LiteRtProgram(file, target, manifest.output.name)
        else -> throw IllegalArgumentException("target '${target.name}' does not run on Android; choose one of $SUPPORTED")
    }
}

/** LiteRT adapter (com.google.ai.edge.litert 2.x CompiledModel): CPU with explicit threads, inputs by name in one signature. */
package io.duet.demo

import com.google.ai.edge.litert.Accelerator
import com.google.ai.edge.litert.CompiledModel
import com.google.ai.edge.litert.LiteRtException
import com.google.ai.edge.litert.TensorBuffer
import io.duet.core.CallArgument
import io.duet.core.LiteRtBinding
import io.duet.core.Metrics
import io.duet.core.PreparedCall
import io.duet.core.RuntimeFailure
import java.io.File

/**
 * A .tflite program on the CPU accelerator (XNNPACK inside LiteRT) with [threads] threads, its buffers made once.
 * The core's [LiteRtBinding] names the signature, the inputs (the manifest target's input_names) and the output.
 */
class LiteRtProgram(file: File, private val binding: LiteRtBinding, threads: Int) : Program {
    override val backend = "litert"
    override val settings = listOf(Pair(Metrics.NUM_THREADS, threads.toDouble()))
    private val model: CompiledModel = runtime {
        val options = CompiledModel.Options(Accelerator.CPU)
        options.cpuOptions = CompiledModel.CpuOptions(numThreads = threads)
        CompiledModel.create(file.absolutePath, options)
    }
    private val inputs: Map<String, TensorBuffer> = runtime {
        binding.inputNames.associateWith { model.createInputBuffer(it, binding.signature) }
    }
    private val outputs: Map<String, TensorBuffer> = runtime {
        mapOf(binding.outputName to model.createOutputBuffer(binding.outputName, binding.signature))
    }

    /** Writes [args] into the model's input buffers: a later prepare overwrites them (one call at a time). */
    override fun prepare(args: List<CallArgument>): PreparedCall {
        for (arg in args) {
            val buffer = inputs.getValue(arg.runtimeName)
            if (arg.data.dtype == "int32") buffer.writeInt(arg.data.intValues()) else buffer.writeFloat(arg.data.floatValues())
        }
        return object : PreparedCall {
            override fun run(): FloatArray {
                model.run(inputs, outputs, binding.signature)
                return outputs.getValue(binding.outputName).readFloat()
            }
        }
    }

    override fun close() {
        (inputs.values + outputs.values).forEach { it.close() }
        model.close()
    }

    /** [block], a LiteRtException as the core's RuntimeFailure; LiteRT 2.1.0 keeps its status code private: -1. */
    private fun <T> runtime(block: () -> T): T = try {
        block()
    } catch (e: LiteRtException) {
        throw RuntimeFailure(-1, e.message ?: "LiteRT error", e)
    }
}

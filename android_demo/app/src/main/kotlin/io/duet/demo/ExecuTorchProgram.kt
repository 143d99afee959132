/** ExecuTorch adapter (org.pytorch:executorch-android): Module.load with explicit threads, then forward(EValue...) with inputs then slots. */
package io.duet.demo

import io.duet.core.CallArgument
import io.duet.core.Metrics
import io.duet.core.PreparedCall
import io.duet.core.RuntimeFailure
import org.pytorch.executorch.EValue
import org.pytorch.executorch.ExecutorchRuntimeException
import org.pytorch.executorch.Module
import org.pytorch.executorch.Tensor
import java.io.File

/**
 * A .pte program. Arguments go positionally in call_signature order (the .pte has no input names). int8 programs
 * call quantized_decomposed::embedding_byte: the executorch-android AAR links the quantized kernels.
 */
class ExecuTorchProgram(file: File, private val threads: Int) : Program {
    override val backend = "xnnpack"
    override val settings = listOf(Pair(Metrics.NUM_THREADS, threads.toDouble()))
    private val module: Module = runtime { Module.load(file.absolutePath, Module.LOAD_MODE_FILE, threads) }

    init {
        // Load (and plan) the method now, so that model load time is not hidden in the first forward. Since
        // executorch 1.3.0 loadMethod returns nothing and throws ExecutorchRuntimeException with the error code.
        runtime { module.loadMethod("forward") }
    }

    override fun prepare(args: List<CallArgument>): PreparedCall {
        val inputs = args.map { arg ->
            val shape = arg.data.shapeLongs()
            EValue.from(if (arg.data.dtype == "int32") Tensor.fromBlob(arg.data.intValues(), shape)
            else Tensor.fromBlob(arg.data.floatValues(), shape))
        }.toTypedArray()
        return object : PreparedCall {
            override fun run(): FloatArray = module.forward(*inputs)[0].toTensor().dataAsFloatArray
        }
    }

    override fun close() = module.destroy()

    /** [block], its ExecutorchRuntimeException as the core's RuntimeFailure with ExecuTorch's error code. */
    private fun <T> runtime(block: () -> T): T = try {
        block()
    } catch (e: ExecutorchRuntimeException) {
        throw RuntimeFailure(e.errorCode, e.message ?: "ExecuTorch error ${e.errorCode}", e)
    }
}

/** ExecuTorch adapter (org.pytorch:executorch-android): Module.load, then forward(EValue...) with inputs then slots. */
package io.duet.demo

import io.duet.core.CallArgument
import org.pytorch.executorch.EValue
import org.pytorch.executorch.Module
import org.pytorch.executorch.Tensor
import java.io.File

/**
 * A .pte program. Arguments go positionally in call_signature order (the .pte has no input names). int8 programs
 * call quantized_decomposed::embedding_byte: the executorch-android AAR links the quantized kernels.
 */
class ExecuTorchProgram(file: File) : Program {
    override val backend = "xnnpack"
    private val module: Module = Module.load(file.absolutePath)

    init {
        // Load (and plan) the method now, so that model load time is not hidden in the first forward.
        val status = module.loadMethod("forward")
        check(status == 0) { "ExecuTorch could not load method forward of ${file.name}: error $status" }
    }

    override fun run(args: List<CallArgument>): FloatArray {
        val inputs = args.map { arg ->
            val shape = arg.data.shapeLongs()
            val tensor = if (arg.data.dtype == "int32") Tensor.fromBlob(arg.data.intValues(), shape)
            else Tensor.fromBlob(arg.data.floatValues(), shape)
            EValue.from(tensor)
        }
        val outputs = module.forward(*inputs.toTypedArray())
        return outputs[0].toTensor().dataAsFloatArray
    }

    override fun close() = module.destroy()
}

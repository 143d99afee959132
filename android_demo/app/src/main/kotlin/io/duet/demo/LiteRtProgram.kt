/** LiteRT adapter (com.google.ai.edge.litert 2.x CompiledModel): inputs by the target's input_names in one signature. */
package io.duet.demo

import com.google.ai.edge.litert.Accelerator
import com.google.ai.edge.litert.CompiledModel
import com.google.ai.edge.litert.TensorBuffer
import io.duet.core.CallArgument
import io.duet.core.Target
import java.io.File

/**
 * A .tflite program run on the CPU (XNNPACK). litert-torch exports one signature, "serving_default", whose inputs are
 * args_0..N (the manifest target's input_names) and whose output is the target's output_name.
 */
class LiteRtProgram(file: File, target: Target, defaultOutput: String) : Program {
    override val backend = "litert"
    private val signature = "serving_default"
    private val model: CompiledModel = CompiledModel.create(file.absolutePath, CompiledModel.Options(Accelerator.CPU))
    private val inputNames: List<String> = target.inputNames
        ?: throw IllegalArgumentException("the tflite target lists no input_names")
    private val inputs: Map<String, TensorBuffer> = inputNames.associateWith { model.createInputBuffer(it, signature) }
    private val outputName: String = target.outputName ?: defaultOutput
    private val outputs: Map<String, TensorBuffer> = mapOf(outputName to model.createOutputBuffer(outputName, signature))

    override fun run(args: List<CallArgument>): FloatArray {
        for (arg in args) {
            val buffer = inputs.getValue(arg.runtimeName)
            if (arg.data.dtype == "int32") buffer.writeInt(arg.data.intValues()) else buffer.writeFloat(arg.data.floatValues())
        }
        model.run(inputs, outputs, signature)
        return outputs.getValue(outputName).readFloat()
    }

    override fun close() {
        (inputs.values + outputs.values).forEach { it.close() }
        model.close()
    }
}

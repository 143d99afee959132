// Declarations of the com.google.ai.edge.litert API the app calls, with the signatures of
// litert/kotlin/src/main/kotlin/com/google/ai/edge/litert/{Model,Common,TensorBuffer,LiteRtException}.kt at
// google-ai-edge/LiteRT v2.1.0. LiteRtException keeps its status private.
package com.google.ai.edge.litert

enum class Accelerator { NONE, CPU, GPU, NPU }

class LiteRtException(message: String) : Exception(message)

abstract class JniHandle internal constructor() : AutoCloseable {
    protected abstract fun destroy()
    final override fun close() = destroy()
}

class TensorBuffer internal constructor() : JniHandle() {
    fun writeInt(data: IntArray) {}
    fun writeFloat(data: FloatArray) {}
    fun readFloat(): FloatArray = FloatArray(0)
    override fun destroy() {}
}

class CompiledModel private constructor() : JniHandle() {
    data class CpuOptions constructor(val numThreads: Int? = null, val xnnPackFlags: Int? = null,
                                      val xnnPackWeightCachePath: String? = null)

    class Options constructor(internal val accelerators: Set<Accelerator>) {
        constructor(vararg accelerators: Accelerator) : this(setOf(*accelerators))
        var cpuOptions: CpuOptions? = null
    }

    @Throws(LiteRtException::class)
    fun createInputBuffer(inputName: String, signature: String = ""): TensorBuffer = TensorBuffer()

    @Throws(LiteRtException::class)
    fun createOutputBuffer(outputName: String, signature: String = ""): TensorBuffer = TensorBuffer()

    @Throws(LiteRtException::class)
    fun run(inputs: Map<String, TensorBuffer>, outputs: Map<String, TensorBuffer>, signature: String = "") {}

    override fun destroy() {}

    companion object {
        @Throws(LiteRtException::class) @JvmOverloads @JvmStatic
        fun create(filePath: String, options: Options = Options(Accelerator.CPU), optionalEnv: Any? = null): CompiledModel =
            CompiledModel()
    }
}

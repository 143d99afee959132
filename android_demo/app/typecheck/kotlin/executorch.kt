// Declarations (no bodies that do anything) of the org.pytorch.executorch API the app calls, with the signatures of
// extension/android/executorch_android/src/main/java/org/pytorch/executorch/*.kt at pytorch/executorch main
// cff6f4d (version.txt 1.5.0; identical at v1.4.1 for these calls). Module.loadMethod returns nothing since 1.3.0.
package org.pytorch.executorch

open class ExecutorchRuntimeException(val errorCode: Int, details: String?) : RuntimeException(details)

open class Tensor {
    open val dataAsFloatArray: FloatArray get() = FloatArray(0)

    companion object {
        @JvmStatic fun fromBlob(data: IntArray, shape: LongArray): Tensor = Tensor()
        @JvmStatic fun fromBlob(data: FloatArray, shape: LongArray): Tensor = Tensor()
    }
}

class EValue {
    fun toTensor(): Tensor = Tensor()

    companion object {
        @JvmStatic fun from(tensor: Tensor): EValue = EValue()
    }
}

open class Module private constructor() : java.io.Closeable {
    open fun forward(vararg inputs: EValue): Array<EValue> = arrayOf()
    open fun loadMethod(methodName: String) {}
    open fun destroy() {}
    override fun close() = destroy()

    companion object {
        const val LOAD_MODE_FILE = 0
        @JvmStatic @JvmOverloads
        fun load(modelPath: String?, loadMode: Int = LOAD_MODE_FILE, numThreads: Int = 0): Module = Module()
    }
}

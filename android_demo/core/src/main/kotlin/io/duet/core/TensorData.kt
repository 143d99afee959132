/** TensorData: one program argument's values (Int32 or Float32) with its shape, as a runtime takes it. */
package io.duet.core

/** Values of one program input or slot; immutable (the accessors hand out copies). */
class TensorData private constructor(
    val shape: List<Int>,
    /** "int32" or "float32", as in the manifest. */
    val dtype: String,
    private val ints: IntArray?,
    private val floats: FloatArray?
) {
    /** Number of elements the shape holds. */
    val numel: Long get() = shape.fold(1L) { n, d -> n * d }

    /** The shape as the runtimes take it. */
    fun shapeLongs(): LongArray = LongArray(shape.size) { shape[it].toLong() }

    /** A copy of the Int32 values (an "int32" tensor only). */
    fun intValues(): IntArray = ints?.copyOf() ?: throw IllegalStateException("a $dtype tensor has no int values")

    /** A copy of the Float32 values (a "float32" tensor only). */
    fun floatValues(): FloatArray = floats?.copyOf() ?: throw IllegalStateException("a $dtype tensor has no float values")

    override fun toString(): String = "TensorData($dtype$shape)"

    companion object {
        /** An int32 tensor of [shape] holding [values] (copied). */
        fun ints(shape: List<Int>, values: IntArray): TensorData {
            checkSize(shape, values.size)
            return TensorData(shape.toList(), "int32", values.copyOf(), null)
        }

        /** A float32 tensor of [shape] holding [values] (copied). */
        fun floats(shape: List<Int>, values: FloatArray): TensorData {
            checkSize(shape, values.size)
            return TensorData(shape.toList(), "float32", null, values.copyOf())
        }

        private fun checkSize(shape: List<Int>, size: Int) {
            val numel = shape.fold(1L) { n, d -> n * d }
            if (shape.any { it < 0 } || numel != size.toLong()) {
                refuse(Reason.SLOT_SHAPE, "a tensor of shape $shape holds $numel values, got $size")
            }
        }
    }
}

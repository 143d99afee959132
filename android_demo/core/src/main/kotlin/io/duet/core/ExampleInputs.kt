/** Example program inputs for any manifest: valid-looking values of each input's shape and dtype (for benchmarks). */
package io.duet.core

/** Inputs that every exported task accepts: int32 ids 1, 2, ... (within the largest id the schema allows), float32 0.5. */
object ExampleInputs {
    /** One value per manifest input, by name; ids stay within [maxId] (the request schema's, else 1..numel). */
    fun of(manifest: Manifest, maxId: Int? = Recommendation.maxItemId(manifest)): Map<String, TensorData> =
        manifest.inputs.associate { spec ->
            val n = spec.numel.toInt()
            val data = if (spec.dtype == "int32") {
                val top = if (maxId != null && maxId >= 1) maxId else n
                TensorData.ints(spec.shape, IntArray(n) { it % top + 1 })
            } else {
                TensorData.floats(spec.shape, FloatArray(n) { 0.5f })
            }
            spec.name to data
        }
}

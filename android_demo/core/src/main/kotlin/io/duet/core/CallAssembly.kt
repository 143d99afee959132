/** Call assembly: a program's arguments in call_signature order (inputs, then slots), named as the target's runtime names them. */
package io.duet.core

/** One program argument: its manifest [name], the runtime's name for it ([runtimeName]) and its values. */
data class CallArgument(val name: String, val runtimeName: String, val data: TensorData)

/** Builds the argument list of one program call. */
object CallAssembly {
    /**
     * The arguments of one call in [manifest]'s call_signature order: the [inputs] (by name), then [slots]. With a
     * [target] that has input_names, each argument's runtime name is input_names[i]; otherwise its manifest name.
     * A missing, unexpected or misshapen input, or slots for other specs, is a [Reason.SLOT_SHAPE] error.
     */
    fun arguments(manifest: Manifest, inputs: Map<String, TensorData>, slots: SlotSet, target: Target? = null): List<CallArgument> {
        val expected = manifest.inputs.map { it.name }
        val missing = expected.filter { it !in inputs }
        val extra = inputs.keys.filter { it !in expected }
        if (missing.isNotEmpty() || extra.isNotEmpty()) {
            refuse(Reason.SLOT_SHAPE, "program inputs: expected $expected; missing ${orNone(missing)}, " +
                "unexpected ${orNone(extra)}")
        }
        if (slots.specs != manifest.slots) {
            refuse(Reason.SLOT_SHAPE, "the slots ${slots.specs.map { it.name + it.shape }} are not the manifest's " +
                "${manifest.slots.map { it.name + it.shape }}")
        }
        val values = ArrayList<TensorData>()
        for (spec in manifest.inputs) {
            val data = inputs.getValue(spec.name)
            if (data.shape != spec.shape || data.dtype != spec.dtype) {
                refuse(Reason.SLOT_SHAPE, "program input '${spec.name}' should be ${spec.dtype} of shape ${spec.shape}, " +
                    "got ${data.dtype} of shape ${data.shape}")
            }
            values.add(data)
        }
        manifest.slots.forEachIndexed { i, spec -> values.add(TensorData.floats(spec.shape, slots.floats(i))) }
        val runtimeNames = target?.inputNames ?: manifest.callSignature
        return manifest.callSignature.mapIndexed { i, name -> CallArgument(name, runtimeNames[i], values[i]) }
    }

    private fun orNone(names: List<String>): String = if (names.isEmpty()) "none" else names.toString()
}

/** How LiteRT's CompiledModel names a program's arguments and output: one signature, input_names, output_name. */
data class LiteRtBinding(val signature: String, val inputNames: List<String>, val outputName: String) {
    companion object {
        /** litert-torch exports one signature under this key. */
        const val SIGNATURE = "serving_default"

        /**
         * The binding of [target] in [manifest]: its input_names (required: LiteRT takes inputs by name; a
         * [Reason.MANIFEST] error without them) and its output_name, else the manifest's output name.
         */
        fun of(manifest: Manifest, target: Target): LiteRtBinding {
            val names = target.inputNames
                ?: refuse(Reason.MANIFEST, "the ${target.name} target lists no input_names: LiteRT takes its inputs by name")
            return LiteRtBinding(SIGNATURE, names, target.outputName ?: manifest.output.name)
        }
    }
}

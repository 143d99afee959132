/** Slot blobs: decode a safetensors answer and check it against the manifest's slots (names, shapes, finite values, bounds). */
package io.duet.core

/** Decoding and checking of slot blobs; mirrors toolkit.protocol.slots.decode_safetensors. */
object SlotBlob {
    /**
     * The slots of [blob] as a [SlotSet] in the manifest's order. A malformed blob or a dtype other than F32/F16 is
     * [Reason.BLOB]; missing or unexpected slots, a wrong shape or a NaN/infinite value is [Reason.SLOT_SHAPE].
     */
    fun decode(blob: ByteArray, specs: List<SlotSpec>): SlotSet = decode(Safetensors.decode(blob), specs)

    /** The slots of a decoded safetensors [file], checked against [specs] as [decode] says. */
    fun decode(file: SafetensorsFile, specs: List<SlotSpec>): SlotSet {
        val expected = specs.map { it.name }
        val present = file.tensors.map { it.name }
        val missing = expected.filter { it !in present }
        val extra = present.filter { it !in expected }
        if (missing.isNotEmpty() || extra.isNotEmpty()) {
            refuse(Reason.SLOT_SHAPE, "slot blob: expected slots $expected; missing ${orNone(missing)}, " +
                "unexpected ${orNone(extra)}")
        }
        val values = LinkedHashMap<String, FloatArray>()
        for (spec in specs) {
            val entry = file.entry(spec.name)!!
            val wanted = spec.shape.map { it.toLong() }
            if (entry.shape != wanted) {
                refuse(Reason.SLOT_SHAPE, "slot blob: slot '${spec.name}' should have shape ${spec.shape}, " +
                    "got ${entry.shape}")
            }
            values[spec.name] = file.floats(entry)
        }
        return SlotSet.of(specs, values, "slot blob")
    }

    /** [decode] against [manifest]'s slots. */
    fun decode(blob: ByteArray, manifest: Manifest): SlotSet = decode(blob, manifest.slots)

    /**
     * [Reason.BLOB] when the blob's own `__metadata__` (covered by its signature, unlike the X-Model-Version header)
     * names another model version or task than [manifest], or, under a signing manifest, names no model version
     * (mirrors toolkit.client.check_metadata).
     */
    fun checkMetadata(metadata: Map<String, String>, manifest: Manifest) {
        val version = metadata["model_version"]
        if (version == null && manifest.signing != null) {
            refuse(Reason.BLOB, "signed slot blob names no model version in its __metadata__: its signature binds no " +
                "model version, refused")
        }
        if (version != null && version != manifest.modelVersion) {
            refuse(Reason.BLOB, "slot blob's __metadata__ names model version ${version.take(40)}, the manifest " +
                "${manifest.modelVersion}: a blob made for another run (its X-Model-Version header rewritten on the way?), refused")
        }
        val task = metadata["task"]
        if (task != null && task != manifest.task) {
            refuse(Reason.BLOB, "slot blob's __metadata__ names task ${task.take(40)}, the manifest ${manifest.task}: refused")
        }
    }

    /**
     * [Reason.BLOB] when a slot holds a |value| beyond the max_abs of its spec (mirrors toolkit.client.check_bounds);
     * a value exactly at the bound is accepted, a slot without max_abs accepts any (finite) value.
     */
    fun checkBounds(slots: SlotSet) {
        slots.specs.forEachIndexed { i, spec ->
            val bound = spec.maxAbs ?: return@forEachIndexed
            var largest = 0.0
            for (x in slots.floats(i)) largest = Math.max(largest, Math.abs(x.toDouble()))
            if (largest > bound) {
                refuse(Reason.BLOB, "slot '${spec.name}' holds |value| ${significant6(largest)}, beyond its bound " +
                    "${significant6(bound)} (manifest max_abs): refused as poisoned")
            }
        }
    }

    /** [x] with 6 significant digits, trailing zeros dropped (Python's `{:.6g}`). */
    internal fun significant6(x: Double): String {
        if (x == 0.0 || x.isNaN() || x.isInfinite()) return x.toString()
        val rounded = java.math.BigDecimal(x).round(java.math.MathContext(6)).stripTrailingZeros()
        val exponent = rounded.precision() - rounded.scale() - 1
        if (exponent >= -4 && exponent < 6) return rounded.toPlainString()
        return String.format(java.util.Locale.ROOT, "%.${rounded.precision() - 1}e", rounded)
    }

    private fun orNone(names: List<String>): String = if (names.isEmpty()) "none" else names.toString()
}

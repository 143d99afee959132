/** Slot blobs: decode a safetensors answer and check it against the manifest's slots (names, shapes, finite values). */
package io.duet.core

/** Decoding and checking of slot blobs; mirrors toolkit.slots.decode_safetensors. */
object SlotBlob {
    /**
     * The slots of [blob] as a [SlotSet] in the manifest's order. A malformed blob or a dtype other than F32/F16 is
     * [Reason.BLOB]; missing or unexpected slots, a wrong shape or a NaN/infinite value is [Reason.SLOT_SHAPE].
     */
    fun decode(blob: ByteArray, specs: List<SlotSpec>): SlotSet {
        val file = Safetensors.decode(blob)
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

    private fun orNone(names: List<String>): String = if (names.isEmpty()) "none" else names.toString()
}

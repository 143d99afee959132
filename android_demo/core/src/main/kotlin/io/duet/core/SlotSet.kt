/** SlotSet: a checked set of slot values (Float32, manifest order) and its flat little-endian bytes. */
package io.duet.core

import java.nio.ByteBuffer
import java.nio.ByteOrder

/**
 * The slots a program runs with, in the manifest's slot order. Values are private copies; [floats] hands out copies,
 * so a SlotSet never changes once built. Equal when the specs and the flat bytes are equal.
 */
class SlotSet private constructor(val specs: List<SlotSpec>, private val values: List<FloatArray>) {

    /** Slot names in manifest order. */
    val names: List<String> get() = specs.map { it.name }

    /** A copy of the values of the slot at [index] (manifest order). */
    fun floats(index: Int): FloatArray = values[index].copyOf()

    /** A copy of the values of the slot called [name]. */
    fun floats(name: String): FloatArray {
        val index = specs.indexOfFirst { it.name == name }
        if (index < 0) refuse(Reason.SLOT_SHAPE, "no slot '$name'; the slots are $names")
        return floats(index)
    }

    /** Each slot's Float32 values little-endian, concatenated in manifest order (= toolkit.slots.pack_flat). */
    fun toFlatBytes(): ByteArray {
        val total = values.fold(0) { n, v -> n + v.size }
        val buffer = ByteBuffer.allocate(4 * total).order(ByteOrder.LITTLE_ENDIAN)
        for (v in values) for (x in v) buffer.putFloat(x)
        return buffer.array()
    }

    override fun equals(other: Any?): Boolean =
        other is SlotSet && other.specs == specs && other.toFlatBytes().contentEquals(toFlatBytes())

    override fun hashCode(): Int = 31 * specs.hashCode() + toFlatBytes().contentHashCode()

    override fun toString(): String = "SlotSet(${specs.joinToString { "${it.name}${it.shape}" }})"

    companion object {
        /**
         * A SlotSet of [values] by slot name, checked against [specs]: exactly these names, each with the spec's
         * number of elements, every value finite (else [Reason.SLOT_SHAPE]). [what] starts the error messages.
         */
        fun of(specs: List<SlotSpec>, values: Map<String, FloatArray>, what: String = "slots"): SlotSet {
            val expected = specs.map { it.name }
            val missing = expected.filter { it !in values }
            val extra = values.keys.filter { it !in expected }
            if (missing.isNotEmpty() || extra.isNotEmpty()) {
                refuse(Reason.SLOT_SHAPE, "$what: expected slots $expected; missing ${listOrNone(missing)}, " +
                    "unexpected ${listOrNone(extra)}")
            }
            return SlotSet(specs, specs.map { spec ->
                val v = values.getValue(spec.name)
                if (v.size.toLong() != spec.numel) {
                    refuse(Reason.SLOT_SHAPE, "$what: slot '${spec.name}' should hold ${spec.numel} values " +
                        "(shape ${spec.shape}), got ${v.size}")
                }
                checkFinite(spec.name, v, what)
                v.copyOf()
            })
        }

        /** The SlotSet whose flat bytes are [flat] (manifest order, little-endian Float32), checked like [of]. */
        fun fromFlatBytes(specs: List<SlotSpec>, flat: ByteArray, what: String = "flat slots"): SlotSet {
            val total = specs.fold(0L) { n, s -> n + s.nbytes }
            if (flat.size.toLong() != total) {
                refuse(Reason.SLOT_SHAPE, "$what: ${flat.size} bytes, the slots take $total")
            }
            val floats = ByteBuffer.wrap(flat).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer()
            val values = LinkedHashMap<String, FloatArray>()
            for (spec in specs) values[spec.name] = FloatArray(spec.numel.toInt()).also { floats.get(it) }
            return of(specs, values, what)
        }

        internal fun checkFinite(name: String, values: FloatArray, what: String) {
            for (x in values) {
                if (x.isNaN() || x.isInfinite()) refuse(Reason.SLOT_SHAPE, "$what: slot '$name' holds NaN or infinite values")
            }
        }

        private fun listOrNone(names: List<String>): String = if (names.isEmpty()) "none" else names.toString()
    }
}

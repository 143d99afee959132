/** A generate request body: ordered fields (strings, integer arrays, number arrays), read from or written as JSON. */
package io.duet.core

import com.google.gson.JsonArray
import com.google.gson.JsonElement
import com.google.gson.JsonObject
import com.google.gson.JsonPrimitive

/** One field of a generate body. */
sealed class BodyField {
    abstract val name: String

    /** A string field (JSON string; in the binary form an entry of `__metadata__`). */
    class Text(override val name: String, val value: String) : BodyField()

    /** An array of integers of [shape] (row-major); shape [] is a single number. */
    class Integers(override val name: String, val shape: List<Int>, private val data: LongArray) : BodyField() {
        fun values(): LongArray = data.copyOf()
    }

    /** An array of numbers of [shape] (row-major) that are not all integers; sent as F32 in the binary form. */
    class Numbers(override val name: String, val shape: List<Int>, private val data: DoubleArray) : BodyField() {
        fun values(): DoubleArray = data.copyOf()
    }
}

/** The fields of one generate body in order; the JSON and the binary form ([WireEncoder]) carry the same fields. */
class RequestBody private constructor(val fields: List<BodyField>) {

    /** The body as compact JSON: the fields in order, integers as JSON integers, nested arrays for shapes. */
    fun toJson(): String {
        val out = StringBuilder("{")
        fields.forEachIndexed { i, field ->
            if (i > 0) out.append(',')
            JsonText.string(out, field.name)
            out.append(':')
            when (field) {
                is BodyField.Text -> JsonText.string(out, field.value)
                is BodyField.Integers -> {
                    val values = field.values()
                    nested(out, field.shape, 0, intArrayOf(0)) { k -> values[k].toString() }
                }
                is BodyField.Numbers -> {
                    val values = field.values()
                    nested(out, field.shape, 0, intArrayOf(0)) { k -> values[k].toString() }
                }
            }
        }
        return out.append('}').toString()
    }

    private fun nested(out: StringBuilder, shape: List<Int>, dim: Int, next: IntArray, value: (Int) -> String) {
        if (dim == shape.size) {
            out.append(value(next[0]))
            next[0] += 1
            return
        }
        out.append('[')
        for (i in 0 until shape[dim]) {
            if (i > 0) out.append(',')
            nested(out, shape, dim + 1, next, value)
        }
        out.append(']')
    }

    /** Builds a body field by field, in order. */
    class Builder {
        private val fields = ArrayList<BodyField>()

        private fun add(field: BodyField): Builder {
            require(fields.none { it.name == field.name }) { "field '${field.name}' is already in the body" }
            fields.add(field)
            return this
        }

        fun text(name: String, value: String): Builder = add(BodyField.Text(name, value))

        fun ints(name: String, values: LongArray, shape: List<Int> = listOf(values.size)): Builder {
            checkShape(name, shape, values.size)
            return add(BodyField.Integers(name, shape.toList(), values.copyOf()))
        }

        fun ints(name: String, values: IntArray, shape: List<Int> = listOf(values.size)): Builder =
            ints(name, LongArray(values.size) { values[it].toLong() }, shape)

        fun numbers(name: String, values: DoubleArray, shape: List<Int> = listOf(values.size)): Builder {
            checkShape(name, shape, values.size)
            require(values.all { !it.isNaN() && !it.isInfinite() }) { "field '$name' holds NaN or infinite values" }
            return add(BodyField.Numbers(name, shape.toList(), values.copyOf()))
        }

        fun numbers(name: String, values: FloatArray, shape: List<Int> = listOf(values.size)): Builder =
            numbers(name, DoubleArray(values.size) { values[it].toDouble() }, shape)

        fun build(): RequestBody = RequestBody(fields.toList())

        private fun checkShape(name: String, shape: List<Int>, size: Int) {
            val numel = shape.fold(1L) { n, d -> n * d }
            require(shape.all { it >= 0 } && numel == size.toLong()) { "field '$name': shape $shape holds $numel values, got $size" }
        }
    }

    companion object {
        private val INTEGER = Regex("-?(0|[1-9][0-9]*)")

        /** The body of a JSON object's text (fields in the object's order). */
        fun fromJson(text: String): RequestBody {
            val element = parseStrictJson(text)
            require(element is JsonObject) { "a generate body is a JSON object" }
            return fromJson(element)
        }

        /**
         * The body of a JSON object: strings stay strings; a number or a (nested, rectangular) array of numbers
         * becomes [BodyField.Integers] when every number is an integer literal, else [BodyField.Numbers] (an empty
         * array is Numbers, as numpy reads `[]` as float64). Anything else is an IllegalArgumentException.
         */
        fun fromJson(obj: JsonObject): RequestBody {
            val builder = Builder()
            for ((name, value) in obj.entrySet()) {
                if (value is JsonPrimitive && value.isString) {
                    builder.text(name, value.asString)
                    continue
                }
                val shape = shapeOf(value)
                val leaves = ArrayList<JsonPrimitive>()
                collect(name, value, shape, 0, leaves)
                if (leaves.isNotEmpty() && leaves.all { INTEGER.matches(it.asString) }) {
                    val longs = leaves.map {
                        it.asString.toLongOrNull()
                            ?: throw IllegalArgumentException("field '$name': ${it.asString} is beyond 64-bit integers")
                    }
                    builder.ints(name, longs.toLongArray(), shape)
                } else {
                    builder.numbers(name, leaves.map { it.asDouble }.toDoubleArray(), shape)
                }
            }
            return builder.build()
        }

        /** The shape read along the first elements: [] for a number, [n, ...] for nested arrays. */
        private fun shapeOf(value: JsonElement): List<Int> {
            val shape = ArrayList<Int>()
            var v = value
            while (v is JsonArray) {
                shape.add(v.size())
                if (v.size() == 0) break
                v = v.get(0)
            }
            return shape
        }

        private fun collect(name: String, value: JsonElement, shape: List<Int>, dim: Int, leaves: MutableList<JsonPrimitive>) {
            if (dim == shape.size) {
                if (value is JsonPrimitive && value.isNumber) {
                    leaves.add(value)
                    return
                }
                if (value is JsonArray) throw IllegalArgumentException("field '$name' is not a rectangular array")
                throw IllegalArgumentException("field '$name' is neither a string nor numbers")
            }
            if (value !is JsonArray) {
                if (value is JsonPrimitive && value.isNumber) throw IllegalArgumentException("field '$name' is not a rectangular array")
                throw IllegalArgumentException("field '$name' is neither a string nor numbers")
            }
            if (value.size() != shape[dim]) throw IllegalArgumentException("field '$name' is not a rectangular array")
            for (item in value) collect(name, item, shape, dim + 1, leaves)
        }
    }
}

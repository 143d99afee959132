/** The binary generate body (toolkit/wire.py encode_request): a safetensors file of the body's arrays, strings in its metadata. */
package io.duet.core

import java.io.ByteArrayOutputStream
import java.nio.ByteBuffer
import java.nio.ByteOrder

/** Encodes a [RequestBody] to the bytes toolkit.wire.encode_request writes for the same JSON body. */
object WireEncoder {
    /** Content-Type of the binary body. */
    const val MEDIA_TYPE = "application/octet-stream"

    private const val I32_MIN = -2147483648L
    private const val I32_END = 2147483648L

    /**
     * Header: compact JSON, `__metadata__` first when there are string fields (in body order), then one entry
     * `{"dtype","shape","data_offsets"}` per array field in body order; integer arrays are I32 when every value is
     * in [-2^31, 2^31) (an empty one too), else I64; number arrays F32. Padded with spaces to a multiple of 8,
     * preceded by its u64 little-endian length, followed by the data little-endian in field order.
     */
    fun encode(body: RequestBody): ByteArray {
        val texts = body.fields.filterIsInstance<BodyField.Text>()
        val arrays = body.fields.filter { it !is BodyField.Text }.map { encodeArray(it) }
        val header = StringBuilder("{")
        if (texts.isNotEmpty()) {
            header.append("\"__metadata__\":{")
            texts.forEachIndexed { i, t ->
                if (i > 0) header.append(',')
                JsonText.string(header, t.name)
                header.append(':')
                JsonText.string(header, t.value)
            }
            header.append('}')
        }
        var offset = 0L
        arrays.forEachIndexed { i, a ->
            if (i > 0 || texts.isNotEmpty()) header.append(',')
            JsonText.string(header, a.name)
            header.append(":{\"dtype\":\"").append(a.dtype).append("\",\"shape\":[")
                .append(a.shape.joinToString(",")).append("],\"data_offsets\":[")
                .append(offset).append(',').append(offset + a.data.size).append("]}")
            offset += a.data.size
        }
        header.append('}')
        val headerBytes = header.toString().toByteArray(Charsets.UTF_8)
        val padding = (8 - headerBytes.size % 8) % 8
        val out = ByteArrayOutputStream(8 + headerBytes.size + padding + offset.toInt())
        out.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong((headerBytes.size + padding).toLong()).array())
        out.write(headerBytes)
        repeat(padding) { out.write(0x20) }
        for (a in arrays) out.write(a.data)
        return out.toByteArray()
    }

    private class Encoded(val name: String, val dtype: String, val shape: List<Int>, val data: ByteArray)

    private fun encodeArray(field: BodyField): Encoded = when (field) {
        is BodyField.Integers -> {
            val values = field.values()
            val fits = values.all { it >= I32_MIN && it < I32_END }
            val buffer = ByteBuffer.allocate(values.size * if (fits) 4 else 8).order(ByteOrder.LITTLE_ENDIAN)
            for (v in values) if (fits) buffer.putInt(v.toInt()) else buffer.putLong(v)
            Encoded(field.name, if (fits) "I32" else "I64", field.shape, buffer.array())
        }
        is BodyField.Numbers -> {
            val values = field.values()
            val buffer = ByteBuffer.allocate(values.size * 4).order(ByteOrder.LITTLE_ENDIAN)
            for (v in values) buffer.putFloat(v.toFloat())
            Encoded(field.name, "F32", field.shape, buffer.array())
        }
        is BodyField.Text -> throw IllegalStateException("string fields go to the metadata")
    }
}

/** Safetensors.decode: every malformed slot blob is a "blob" refusal that says what is wrong; good ones decode exactly. */
package io.duet.core

import io.duet.core.Fixtures.f16
import io.duet.core.Fixtures.f32
import io.duet.core.Fixtures.raw
import io.duet.core.Fixtures.refused
import io.duet.core.Fixtures.safetensors
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Test
import java.nio.ByteBuffer
import java.nio.ByteOrder

class SafetensorsTest {
    private val four = ByteArray(4)

    @Test
    fun decodesF32AndF16InDataOrder() {
        val blob = safetensors(listOf(f32("a", listOf(2), floatArrayOf(1.5f, -2f)), f16("b", listOf(3), intArrayOf(0x3c00, 0x8000, 0x0001))),
            mapOf("format" to "pt"))
        val file = Safetensors.decode(blob)
        assertEquals(mapOf("format" to "pt"), file.metadata)
        assertEquals(listOf("a", "b"), file.tensors.map { it.name })
        assertArrayEquals(floatArrayOf(1.5f, -2f), file.floats(file.entry("a")!!), 0f)
        assertArrayEquals(floatArrayOf(1f, -0f, Math.pow(2.0, -24.0).toFloat()), file.floats(file.entry("b")!!), 0f)
    }

    @Test
    fun headerMayHaveLeadingAndTrailingSpaces() {
        val blob = raw("  {\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}   ", listOf(four))
        assertEquals(listOf("a"), Safetensors.decode(blob).tensors.map { it.name })
    }

    @Test
    fun headerMayStartWithAnyJsonWhitespace() {
        val blob = raw(" \n\t\r{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}\r\n", listOf(four))
        assertEquals(listOf("a"), Safetensors.decode(blob).tensors.map { it.name })
        refused(Reason.BLOB, "does not start with '{'") { Safetensors.decode(raw("\u000b{}", emptyList())) }
        refused(Reason.BLOB, "does not start with '{'") { Safetensors.decode(raw("\u00a0{}", emptyList())) }
    }

    @Test
    fun aNameTwiceIsRefused() {
        val entry = "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}"
        refused(Reason.BLOB, "names 'a' twice") { Safetensors.decode(raw("{\"a\":$entry,\"a\":$entry}", listOf(four))) }
        refused(Reason.BLOB, "names '__metadata__' twice") {
            Safetensors.decode(raw("{\"__metadata__\":{},\"a\":$entry,\"__metadata__\":{}}", listOf(four)))
        }
        refused(Reason.BLOB, "names 'k' twice") {
            Safetensors.decode(raw("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"},\"a\":$entry}", listOf(four)))
        }
    }

    @Test
    fun deeplyNestedHeadersAreRefusedWithoutOverflow() {
        val deep = "{\"a\":" + "[".repeat(200_000) + "]".repeat(200_000) + "}"
        refused(Reason.BLOB) { Safetensors.decode(raw(deep, emptyList())) } // (Gson 2.11+ caps the nesting itself)
    }

    @Test
    fun tooShort() {
        refused(Reason.BLOB, "too short") { Safetensors.decode(ByteArray(7)) }
    }

    @Test
    fun headerLengthBeyondTheBoundOrTheFile() {
        val huge = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(200_000_000L).array()
        refused(Reason.BLOB, "exceeds") { Safetensors.decode(huge) }
        val past = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(9).array()
        refused(Reason.BLOB, "runs past the end") { Safetensors.decode(past) }
        val negative = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(-1).array()
        refused(Reason.BLOB, "exceeds") { Safetensors.decode(negative) }
    }

    @Test
    fun headerMustBeUtf8JsonObject() {
        val bad = raw("{\"a\":1}", emptyList())
        bad[9] = 0xff.toByte()
        refused(Reason.BLOB, "not UTF-8") { Safetensors.decode(bad) }
        refused(Reason.BLOB, "does not start with '{'") { Safetensors.decode(raw("[1, 2]", emptyList())) }
        refused(Reason.BLOB, "not a JSON object") { Safetensors.decode(raw("{\"a\": }", emptyList())) }
        refused(Reason.BLOB, "not a JSON object") { Safetensors.decode(raw("{} {}", emptyList())) }
        // a raw newline inside a string (a flipped byte): JSON wants it escaped, Gson alone would take it
        refused(Reason.BLOB, "not a JSON object") { Safetensors.decode(raw("{\"\n_metadata__\":{}}", emptyList())) }
        assertEquals(0, Safetensors.decode(raw("{\n\t\"__metadata__\" :\r\n{\"a\\n\":\"b\"}}", emptyList())).tensors.size)
    }

    @Test
    fun metadataMustMapStringsToStrings() {
        refused(Reason.BLOB, "__metadata__ 'n' should be a string") {
            Safetensors.decode(raw("{\"__metadata__\":{\"n\":5}}", emptyList()))
        }
        refused(Reason.BLOB, "__metadata__ should be an object") {
            Safetensors.decode(raw("{\"__metadata__\":[\"x\"]}", emptyList()))
        }
    }

    @Test
    fun dtypesOtherThanF32AndF16AreNamed() {
        for (dtype in listOf("F64", "I32", "BF16", "U8")) {
            val blob = raw("{\"a\":{\"dtype\":\"$dtype\",\"shape\":[1],\"data_offsets\":[0,4]}}", listOf(four))
            refused(Reason.BLOB, "dtype $dtype is not supported") { Safetensors.decode(blob) }
        }
    }

    @Test
    fun entriesNeedTypedFields() {
        refused(Reason.BLOB, "'shape' is missing") {
            Safetensors.decode(raw("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", listOf(four)))
        }
        refused(Reason.BLOB, "non-negative integers") {
            Safetensors.decode(raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", listOf(four)))
        }
        refused(Reason.BLOB, "non-negative integers") {
            Safetensors.decode(raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", listOf(four)))
        }
        refused(Reason.BLOB, "data_offsets should be [begin, end]") {
            Safetensors.decode(raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", listOf(four)))
        }
        refused(Reason.BLOB, "its entry should be an object") { Safetensors.decode(raw("{\"a\":\"F32\"}", listOf(four))) }
    }

    @Test
    fun sizesMustMatchShapes() {
        refused(Reason.BLOB, "8 bytes do not hold F32 of shape [1]") {
            Safetensors.decode(raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,8]}}", listOf(ByteArray(8))))
        }
    }

    @Test
    fun tensorsMustBeContiguousWithNoHolesOverlapsOrTrailingBytes() {
        val hole = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}"
        refused(Reason.BLOB, "starts at data byte 4, expected 0") { Safetensors.decode(raw(hole, listOf(ByteArray(8)))) }
        val overlap = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}"
        refused(Reason.BLOB, "'b' starts at data byte 4, expected 8") { Safetensors.decode(raw(overlap, listOf(ByteArray(8)))) }
        val one = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}"
        refused(Reason.BLOB, "cover 4 bytes", "holds 5 data bytes") { Safetensors.decode(raw(one, listOf(ByteArray(5)))) }
        refused(Reason.BLOB, "cover 4 bytes", "holds 3 data bytes") {
            Safetensors.decode(raw(one, listOf(ByteArray(3))))
        }
    }

    @Test
    fun tensorsAreSortedByOffsetNotByHeaderOrder() {
        val swapped = "{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}"
        val data = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putFloat(1f).putFloat(2f).array()
        val file = Safetensors.decode(raw(swapped, listOf(data)))
        assertEquals(listOf("a", "b"), file.tensors.map { it.name })
        assertArrayEquals(floatArrayOf(2f), file.floats(file.entry("b")!!), 0f)
    }
}

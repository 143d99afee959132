/** WireEncoder and RequestBody: the binary body is byte for byte toolkit.wire.encode_request's; JSON bodies round trip. */
package io.duet.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test

class WireEncoderTest {
    /** The JSON of a body exercising every rule: metadata escapes, I32, I64 beyond 2^31, F32, bounds, [], a scalar. */
    private val json = "{\"device_id\":\"phone-7\",\"items\":[3,1,4],\"timestamps\":[1099511627776,5,6]," +
        "\"images\":[[0.25,0.5],[1.0,0.1]],\"we\\\"ird\\n\":\"x\\u0001\u00e9\\\\\",\"neg\":[-2147483648,2147483647]," +
        "\"empty\":[],\"one\":7}"

    /** encode_request of the same body in Python (toolkit/wire.py with orjson), as hex. */
    private val pythonHex = "a8010000000000007b225f5f6d657461646174615f5f223a7b226465766963655f6964223a2270686f6e652d37222c2277655c226972645c6e223a22785c7530303031c3a95c5c227d2c226974656d73223a7b226474797065223a22493332222c227368617065223a5b335d2c22646174615f6f666673657473223a5b302c31325d7d2c2274696d657374616d7073223a7b226474797065223a22493634222c227368617065223a5b335d2c22646174615f6f666673657473223a5b31322c33365d7d2c22696d61676573223a7b226474797065223a22463332222c227368617065223a5b322c325d2c22646174615f6f666673657473223a5b33362c35325d7d2c226e6567223a7b226474797065223a22493332222c227368617065223a5b325d2c22646174615f6f666673657473223a5b35322c36305d7d2c22656d707479223a7b226474797065223a22463332222c227368617065223a5b305d2c22646174615f6f666673657473223a5b36302c36305d7d2c226f6e65223a7b226474797065223a22493332222c227368617065223a5b5d2c22646174615f6f666673657473223a5b36302c36345d7d7d20200300000001000000040000000000000000010000050000000000000006000000000000000000803e0000003f0000803fcdcccc3d00000080ffffff7f07000000"

    @Test
    fun bytesAreIdenticalToPythonsEncoder() {
        assertEquals(pythonHex, Sha256.toHex(WireEncoder.encode(RequestBody.fromJson(json))))
    }

    @Test
    fun jsonFormKeepsOrderTypesAndShapes() {
        val body = RequestBody.fromJson(json)
        assertEquals(listOf("device_id", "items", "timestamps", "images", "we\"ird\n", "neg", "empty", "one"), body.fields.map { it.name })
        assertTrue(body.fields[1] is BodyField.Integers)
        assertTrue(body.fields[3] is BodyField.Numbers)
        assertEquals(listOf(2, 2), (body.fields[3] as BodyField.Numbers).shape)
        assertEquals(emptyList<Int>(), (body.fields[7] as BodyField.Integers).shape)
        // written again and read back: the same binary bytes
        assertEquals(pythonHex, Sha256.toHex(WireEncoder.encode(RequestBody.fromJson(body.toJson()))))
        assertTrue(body.toJson(), body.toJson().startsWith("{\"device_id\":\"phone-7\",\"items\":[3,1,4],\"timestamps\":[1099511627776,5,6],\"images\":[[0.25,0.5],[1.0,0.1]]"))
    }

    @Test
    fun builderMatchesTheJsonForm() {
        val built = RequestBody.Builder().text("device_id", "d").ints("items", intArrayOf(1, 2)).ints("timestamps", longArrayOf(5L, 1L shl 40)).build()
        val parsed = RequestBody.fromJson("{\"device_id\":\"d\",\"items\":[1,2],\"timestamps\":[5,1099511627776]}")
        assertEquals(Sha256.toHex(WireEncoder.encode(parsed)), Sha256.toHex(WireEncoder.encode(built)))
        val header = String(WireEncoder.encode(built), Charsets.UTF_8)
        assertTrue(header, header.contains("\"items\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}"))
        assertTrue(header, header.contains("\"timestamps\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[8,24]}"))
    }

    @Test
    fun headerIsPaddedToEightBytesAndReadableByTheDecoder() {
        val bytes = WireEncoder.encode(RequestBody.Builder().numbers("x", floatArrayOf(1f, 2f)).build())
        val n = java.nio.ByteBuffer.wrap(bytes, 0, 8).order(java.nio.ByteOrder.LITTLE_ENDIAN).long
        assertEquals(0L, n % 8)
        assertEquals(8 + n + 8, bytes.size.toLong())
        val file = Safetensors.decode(bytes) // F32 only: our own slot decoder reads it
        assertEquals(listOf(1f, 2f), file.floats(file.entry("x")!!).toList())
    }

    @Test
    fun fieldsThatAreNotStringsOrNumbersAreRefused() {
        for ((body, words) in listOf("{\"a\":[true]}" to "neither a string nor numbers", "{\"a\":null}" to "neither",
            "{\"a\":[[1],[2,3]]}" to "not a rectangular array", "{\"a\":[1,[2]]}" to "not a rectangular array",
            "{\"a\":{\"b\":1}}" to "neither")) {
            try {
                RequestBody.fromJson(body)
                fail("$body was accepted")
            } catch (e: IllegalArgumentException) {
                assertTrue("${e.message} for $body", (e.message ?: "").contains(words))
            }
        }
    }
}

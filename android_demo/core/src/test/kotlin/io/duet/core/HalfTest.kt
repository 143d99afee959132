/** halfToFloat: exact for every one of the 65,536 half-precision bit patterns. */
package io.duet.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test

class HalfTest {
    private fun bits(f: Float) = java.lang.Float.floatToRawIntBits(f)

    @Test
    fun knownValues() {
        assertEquals(1.0f, halfToFloat(0x3c00), 0f)
        assertEquals(-2.0f, halfToFloat(0xc000), 0f)
        assertEquals(65504.0f, halfToFloat(0x7bff), 0f)
        assertEquals(Math.pow(2.0, -24.0).toFloat(), halfToFloat(0x0001), 0f) // smallest subnormal
        assertEquals(Math.pow(2.0, -14.0).toFloat() * 1023f / 1024f, halfToFloat(0x03ff), 0f) // largest subnormal
        assertEquals(bits(-0.0f), bits(halfToFloat(0x8000))) // signed zero keeps its sign
        assertEquals(Float.POSITIVE_INFINITY, halfToFloat(0x7c00), 0f)
        assertEquals(Float.NEGATIVE_INFINITY, halfToFloat(0xfc00), 0f)
        assertTrue(halfToFloat(0x7e00).isNaN())
    }

    @Test
    fun everyFiniteHalfMatchesItsDefinition() {
        for (h in 0 until 0x10000) {
            val exponent = h shr 10 and 0x1f
            if (exponent == 0x1f) continue
            val mantissa = (h and 0x3ff).toDouble()
            val magnitude = if (exponent == 0) mantissa * Math.pow(2.0, -24.0)
            else (1 + mantissa / 1024) * Math.pow(2.0, (exponent - 15).toDouble())
            val expected = (if (h and 0x8000 != 0) -magnitude else magnitude).toFloat()
            assertEquals("half 0x${Integer.toHexString(h)}", bits(expected), bits(halfToFloat(h)))
        }
    }
}

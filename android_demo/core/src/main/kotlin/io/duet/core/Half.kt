/** IEEE 754 half-precision (binary16) to Float32, exact, by bit manipulation (JDK 17 has no Float.float16ToFloat). */
package io.duet.core

/** The Float32 value of the half-precision number whose 16 bits are the low bits of [bits]: exact for every input. */
fun halfToFloat(bits: Int): Float {
    val sign = (bits ushr 15 and 1) shl 31
    val exponent = bits ushr 10 and 0x1f
    val mantissa = bits and 0x3ff
    val out = when {
        exponent == 0x1f -> sign or (0xff shl 23) or (mantissa shl 13) // infinity, or NaN keeping its payload
        exponent != 0 -> sign or ((exponent - 15 + 127) shl 23) or (mantissa shl 13)
        mantissa == 0 -> sign // signed zero
        else -> { // subnormal: mantissa * 2^-24, renormalised so the leading 1 becomes implicit
            var m = mantissa
            var e = -14
            while (m and 0x400 == 0) {
                m = m shl 1
                e -= 1
            }
            sign or ((e + 127) shl 23) or ((m and 0x3ff) shl 13)
        }
    }
    return java.lang.Float.intBitsToFloat(out)
}

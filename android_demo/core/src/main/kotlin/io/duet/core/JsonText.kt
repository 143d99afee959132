/** JSON text writing with the escaping of the Python side's orjson (so header bytes match toolkit.wire exactly). */
package io.duet.core

internal object JsonText {
    private const val HEX = "0123456789abcdef"

    /** Append [value] as a JSON string: `"` and `\` escaped, control characters as \b \t \n \f \r or \u00xx, the rest raw. */
    fun string(out: StringBuilder, value: String) {
        out.append('"')
        for (c in value) {
            when (c) {
                '"' -> out.append("\\\"")
                '\\' -> out.append("\\\\")
                '\n' -> out.append("\\n")
                '\r' -> out.append("\\r")
                '\t' -> out.append("\\t")
                '\b' -> out.append("\\b")
                '\u000c' -> out.append("\\f")
                else -> if (c < ' ') {
                    val v = c - '\u0000'
                    out.append("\\u00").append(HEX[v shr 4]).append(HEX[v and 0xf])
                } else {
                    out.append(c)
                }
            }
        }
        out.append('"')
    }
}

/** Error mapping of service answers: HTTP status >= 400 or no answer at all becomes a [Reason.SERVICE] DuetException. */
package io.duet.core

import com.google.gson.JsonElement
import com.google.gson.JsonObject
import com.google.gson.JsonPrimitive
import java.math.BigDecimal
import java.math.BigInteger

/** Maps what the service answered (or did not) to [DuetException]s; mirrors toolkit.client._raise_for_error. */
object ServiceErrors {
    /** How many characters of a body that is not a JSON error become the message. */
    const val MESSAGE_CHARS = 200

    /**
     * The error of an answer with [status] >= 400: code and message from the JSON body `{"error", "message"}` (each
     * a string, or a number in its text form), or "http_error" and the first 200 characters of the body when the
     * body is not a JSON object with both; Retry-After when it is a whole number of seconds.
     */
    fun fromAnswer(method: String, path: String, status: Int, body: ByteArray, retryAfter: String?): DuetException {
        val text = String(body, Charsets.UTF_8)
        val json = try {
            parseStrictJson(text) as? JsonObject
        } catch (e: DuplicateKeyException) {
            null
        }
        val code = json?.get("error")?.let { textOf(it) }
        val message = json?.get("message")?.let { textOf(it) }
        val (c, m) = if (code != null && message != null) Pair(code, message) else Pair("http_error", firstChars(text, MESSAGE_CHARS))
        return DuetException(Reason.SERVICE, "$method $path: $status $c: $m", status, c, retrySeconds(retryAfter))
    }

    /** The error of a call that got no answer (connection refused, timeout, reset, cut short): status 0. */
    fun noAnswer(method: String, path: String, cause: Throwable): DuetException =
        DuetException(Reason.SERVICE, "$method $path: no answer from the service ($cause)", 0, "", null, cause)

    /** Retry-After in seconds when it is all ASCII digits (like Python's `isdigit()`); else (a date, "1.5") null. */
    fun retrySeconds(header: String?): Double? {
        val value = header?.trim() ?: return null
        if (value.length == 0 || value.any { it < '0' || it > '9' }) return null
        return BigInteger(value).toDouble()
    }

    /** A JSON string as it is; a JSON number as Python's `str()` writes it; anything else null. */
    internal fun textOf(value: JsonElement): String? {
        if (value !is JsonPrimitive) return null
        if (value.isString) return value.asString
        if (!value.isNumber) return null
        val literal = value.asString
        return if (literal.all { it == '-' || it in '0'..'9' }) BigInteger(literal).toString() else pythonFloat(literal)
    }

    /** Python's repr of the float nearest to the JSON number [literal] ("1.5", "1e-05", "1e+16", "inf"). */
    private fun pythonFloat(literal: String): String {
        val d = literal.toDouble()
        if (d.isInfinite()) return if (d > 0) "inf" else "-inf"
        if (d == 0.0) return if (1.0 / d < 0) "-0.0" else "0.0"
        val shortest = BigDecimal(java.lang.Double.toString(d)).stripTrailingZeros()
        val digits = shortest.unscaledValue().abs().toString()
        val exponent = digits.length - 1 - shortest.scale() // d = 0.digits * 10^(exponent + 1)
        val sign = if (d < 0) "-" else ""
        if (exponent < -4 || exponent >= 16) {
            val mantissa = if (digits.length == 1) digits else digits.substring(0, 1) + "." + digits.substring(1)
            val e = if (exponent < 0) "-" + pad2(-exponent) else "+" + pad2(exponent)
            return "$sign${mantissa}e$e"
        }
        val plain = shortest.abs().toPlainString()
        return sign + if (plain.contains('.')) plain else "$plain.0"
    }

    private fun pad2(n: Int): String = if (n < 10) "0$n" else n.toString()

    /** The first [n] characters (code points) of [text]. */
    private fun firstChars(text: String, n: Int): String {
        if (text.codePointCount(0, text.length) <= n) return text
        return text.substring(0, text.offsetByCodePoints(0, n))
    }
}

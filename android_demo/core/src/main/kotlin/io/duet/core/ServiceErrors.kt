/** Error mapping of service answers: HTTP status >= 400 or no answer at all becomes a [Reason.SERVICE] DuetException. */
package io.duet.core

import com.google.gson.JsonObject

/** Maps what the service answered (or did not) to [DuetException]s; mirrors toolkit.client._raise_for_error. */
object ServiceErrors {
    /**
     * The error of an answer with [status] >= 400: code and message from the JSON body `{"error", "message"}`, or
     * "http_error" and the first 200 characters of the body; Retry-After (seconds) when sent.
     */
    fun fromAnswer(method: String, path: String, status: Int, body: ByteArray, retryAfter: String?): DuetException {
        val text = String(body, Charsets.UTF_8)
        val json = parseStrictJson(text) as? JsonObject
        val code = json?.get("error")?.asTextOrNull()
        val message = json?.get("message")?.asTextOrNull()
        val (c, m) = if (code != null && message != null) Pair(code, message) else Pair("http_error", text.take(200))
        return DuetException(Reason.SERVICE, "$method $path: $status $c: $m", status, c, retrySeconds(retryAfter))
    }

    /** The error of a call that got no answer (connection refused, timeout, reset): status 0. */
    fun noAnswer(method: String, path: String, cause: Throwable): DuetException =
        DuetException(Reason.SERVICE, "$method $path: no answer from the service ($cause)", 0, "", null, cause)

    /** Retry-After in seconds when it is a number of seconds (an HTTP date is ignored). */
    fun retrySeconds(header: String?): Double? {
        val value = header?.trim()?.toDoubleOrNull() ?: return null
        return if (value >= 0 && !value.isInfinite()) value else null
    }
}

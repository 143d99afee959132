/** One HTTP exchange over java.net.HttpURLConnection: request bytes out, status + headers + body (or a stream) back. */
package io.duet.core

import java.io.FilterInputStream
import java.io.IOException
import java.io.InputStream
import java.net.HttpURLConnection
import java.net.URL

/** A complete answer: status, headers (names case-insensitive), body bytes. */
class HttpAnswer(val status: Int, private val headers: Map<String, String>, val body: ByteArray) {
    /** The header [name] (case-insensitive), or null. */
    fun header(name: String): String? = headers[name]
}

/**
 * Performs requests with the API key and timeouts; never follows redirects; I/O failures (refused, timeout, a body
 * cut short of its Content-Length) become [ServiceErrors.noAnswer].
 */
internal class HttpExchange(private val apiKey: String, private val timeoutMillis: Int) {

    /**
     * Send [method] [url] with [body] ([contentType]) and read the whole answer, whatever its status: an error
     * answer (>= 400) is read up to [ERROR_BODY_CAP] bytes (the rest ignored), any other up to [cap] bytes (more is
     * a [Reason.SERVICE] error).
     */
    fun call(method: String, url: URL, path: String, body: ByteArray? = null, contentType: String? = null,
             cap: Long = ANSWER_CAP): HttpAnswer =
        open(method, url, path, body, contentType) { connection, status ->
            val headers = headersOf(connection)
            val bytes = if (status >= 400) {
                readAtMost(connection.errorStream, ERROR_BODY_CAP)
            } else {
                val declared = connection.contentLengthLong
                if (declared > cap) throw tooLarge(method, path, status, cap)
                val input = checked(connection.inputStream, declared)
                readCapped(input, cap) ?: throw tooLarge(method, path, status, cap)
            }
            HttpAnswer(status, headers, bytes)
        }

    /**
     * Send a GET and, when the answer is 200, hand its headers and body stream (cut-short bodies raise an
     * IOException, i.e. "no answer") to [consume]; any other answer is read (capped) and returned as an
     * [HttpAnswer] instead, for the caller's error mapping.
     */
    fun <T> stream(url: URL, path: String, consume: (HttpAnswer, InputStream) -> T): Pair<T?, HttpAnswer> =
        open("GET", url, path, null, null) { connection, status ->
            if (status == 200) {
                val head = HttpAnswer(status, headersOf(connection), ByteArray(0))
                val declared = connection.contentLengthLong
                Pair(checked(connection.inputStream, declared).use { consume(head, it) }, head)
            } else {
                val input = if (status >= 400) connection.errorStream else connection.inputStream
                Pair(null, HttpAnswer(status, headersOf(connection), readAtMost(input, ERROR_BODY_CAP)))
            }
        }

    private fun <T> open(method: String, url: URL, path: String, body: ByteArray?, contentType: String?,
                         read: (HttpURLConnection, Int) -> T): T {
        val protocol = url.protocol
        if (protocol != "http" && protocol != "https") {
            throw DuetException(Reason.SERVICE, "$method $path: '$protocol' URLs are not supported; the service URL " +
                "starts with http:// or https://", 0, "", null)
        }
        val connection = try {
            url.openConnection() as? HttpURLConnection
                ?: throw IOException("${url.protocol} did not give an HTTP connection")
        } catch (e: IOException) {
            throw ServiceErrors.noAnswer(method, path, e)
        }
        try {
            connection.requestMethod = method
            connection.instanceFollowRedirects = false // a redirect is an answer, and the key is not re-sent
            connection.connectTimeout = timeoutMillis
            connection.readTimeout = timeoutMillis
            connection.useCaches = false
            connection.setRequestProperty("Authorization", "Bearer $apiKey")
            connection.setRequestProperty("Accept", "application/json, application/octet-stream")
            if (body != null) {
                connection.doOutput = true
                connection.setRequestProperty("Content-Type", contentType ?: "application/octet-stream")
                connection.setFixedLengthStreamingMode(body.size)
                connection.outputStream.use { it.write(body) }
            }
            val status = connection.responseCode
            return read(connection, status) // streams read to the end and closed: the connection can be reused
        } catch (e: IOException) {
            connection.disconnect()
            throw ServiceErrors.noAnswer(method, path, e)
        } catch (e: IllegalArgumentException) { // e.g. a URL without a host
            connection.disconnect()
            throw ServiceErrors.noAnswer(method, path, e)
        } catch (e: Throwable) {
            connection.disconnect()
            throw e
        }
    }

    private fun tooLarge(method: String, path: String, status: Int, cap: Long): DuetException =
        DuetException(Reason.SERVICE, "$method $path: the answer is larger than $cap bytes; refused", status,
            "answer_too_large")

    private fun headersOf(connection: HttpURLConnection): Map<String, String> {
        val out = java.util.TreeMap<String, String>(String.CASE_INSENSITIVE_ORDER)
        for ((name, values) in connection.headerFields) {
            if (name != null && values.isNotEmpty()) out[name] = values.last()
        }
        return out
    }

    companion object {
        /** The most bytes read of an error answer (its message uses 200 characters). */
        const val ERROR_BODY_CAP = 64L * 1024

        /** The most bytes of a manifest or slot answer. */
        const val ANSWER_CAP = 64L * 1024 * 1024

        /** At most [limit] bytes of [input] (closed afterwards); the rest is not read. */
        fun readAtMost(input: InputStream?, limit: Long): ByteArray {
            if (input == null) return ByteArray(0)
            return input.use { readUpTo(it, limit).first }
        }

        /** All of [input] (closed afterwards) when it holds at most [cap] bytes; null as soon as it holds more. */
        fun readCapped(input: InputStream, cap: Long): ByteArray? = input.use {
            val (bytes, more) = readUpTo(it, cap)
            if (more) null else bytes
        }

        /** Up to [limit] bytes, and whether at least one more byte followed. */
        private fun readUpTo(input: InputStream, limit: Long): Pair<ByteArray, Boolean> {
            val out = java.io.ByteArrayOutputStream()
            val chunk = ByteArray(1 shl 16)
            var total = 0L
            while (true) {
                val room = limit - total
                val n = input.read(chunk, 0, Math.min(chunk.size.toLong(), room + 1).toInt())
                if (n < 0) return Pair(out.toByteArray(), false)
                val kept = Math.min(n.toLong(), room).toInt()
                out.write(chunk, 0, kept)
                total += kept
                if (kept < n) return Pair(out.toByteArray(), true)
            }
        }

        /** [input], raising an IOException at its end when fewer than [declared] bytes (Content-Length) came. */
        fun checked(input: InputStream, declared: Long): InputStream =
            if (declared < 0) input else LengthCheckedStream(input, declared)
    }
}

/** Counts the bytes read; reaching the end before [expected] bytes is an IOException (the connection was cut). */
private class LengthCheckedStream(input: InputStream, private val expected: Long) : FilterInputStream(input) {
    private var count = 0L

    override fun read(): Int {
        val b = super.read()
        if (b < 0) atEnd() else count += 1
        return b
    }

    override fun read(b: ByteArray, off: Int, len: Int): Int {
        val n = super.read(b, off, len)
        if (n < 0) atEnd() else count += n
        return n
    }

    private fun atEnd() {
        if (count < expected) throw IOException("the connection closed after $count of $expected bytes")
    }
}

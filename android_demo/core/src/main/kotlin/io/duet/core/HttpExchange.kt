/** One HTTP exchange over java.net.HttpURLConnection: request bytes out, status + headers + body (or a stream) back. */
package io.duet.core

import java.io.IOException
import java.io.InputStream
import java.net.HttpURLConnection
import java.net.URL

/** A complete answer: status, headers (names case-insensitive), body bytes. */
class HttpAnswer(val status: Int, private val headers: Map<String, String>, val body: ByteArray) {
    /** The header [name] (case-insensitive), or null. */
    fun header(name: String): String? = headers[name]
}

/** Performs requests with the API key and timeouts; I/O failures become [ServiceErrors.noAnswer]. */
internal class HttpExchange(private val apiKey: String, private val timeoutMillis: Int) {

    /** Send [method] [url] with [body] ([contentType]) and read the whole answer, whatever its status. */
    fun call(method: String, url: URL, path: String, body: ByteArray? = null, contentType: String? = null): HttpAnswer =
        open(method, url, path, body, contentType) { connection, status ->
            HttpAnswer(status, headersOf(connection), readAll(stream(connection, status)))
        }

    /**
     * Send a GET and, when the answer is 200, hand its headers and body stream to [consume]; any other answer is
     * read whole and returned as an [HttpAnswer] instead (for the caller's error mapping).
     */
    fun <T> stream(url: URL, path: String, consume: (HttpAnswer, InputStream) -> T): Pair<T?, HttpAnswer> =
        open("GET", url, path, null, null) { connection, status ->
            if (status == 200) {
                val head = HttpAnswer(status, headersOf(connection), ByteArray(0))
                Pair(connection.inputStream.use { consume(head, it) }, head)
            } else {
                Pair(null, HttpAnswer(status, headersOf(connection), readAll(stream(connection, status))))
            }
        }

    private fun <T> open(method: String, url: URL, path: String, body: ByteArray?, contentType: String?,
                         read: (HttpURLConnection, Int) -> T): T {
        val connection = try {
            url.openConnection() as HttpURLConnection
        } catch (e: IOException) {
            throw ServiceErrors.noAnswer(method, path, e)
        }
        try {
            connection.requestMethod = method
            connection.instanceFollowRedirects = false
            connection.connectTimeout = timeoutMillis
            connection.readTimeout = timeoutMillis
            connection.useCaches = false
            connection.setRequestProperty("Authorization", "Bearer $apiKey")
            connection.setRequestProperty("Accept", "application/json, application/octet-stream")
            if (body != null) {
                connection.doOutput = true
                connection.setRequestProperty("Content-Type", contentType ?: "application/octet-stream")
                connection.outputStream.use { it.write(body) }
            }
            val status = connection.responseCode
            return read(connection, status) // streams read to the end and closed: the connection can be reused
        } catch (e: IOException) {
            connection.disconnect()
            throw ServiceErrors.noAnswer(method, path, e)
        } catch (e: Throwable) {
            connection.disconnect()
            throw e
        }
    }

    private fun stream(connection: HttpURLConnection, status: Int): InputStream? =
        if (status >= 400) connection.errorStream else connection.inputStream

    private fun headersOf(connection: HttpURLConnection): Map<String, String> {
        val out = java.util.TreeMap<String, String>(String.CASE_INSENSITIVE_ORDER)
        for ((name, values) in connection.headerFields) {
            if (name != null && values.isNotEmpty()) out[name] = values.last()
        }
        return out
    }

    private fun readAll(input: InputStream?): ByteArray = input?.use { it.readBytes() } ?: ByteArray(0)
}

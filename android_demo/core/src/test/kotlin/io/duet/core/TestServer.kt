/** A small in-process HTTP server (the JDK's com.sun.net.httpserver) answering fixed routes, for client tests. */
package io.duet.core

import com.sun.net.httpserver.HttpServer
import java.net.InetSocketAddress
import java.util.concurrent.CopyOnWriteArrayList

/** What a route answers. */
class Reply(val status: Int, val body: ByteArray, val headers: Map<String, String> = emptyMap())

/** A request as received (header names case-insensitive). */
class Received(val method: String, val path: String, val query: String?, val headers: Map<String, String>, val body: ByteArray)

class TestServer(private val routes: Map<String, (Received) -> Reply>) : java.io.Closeable {
    val received = CopyOnWriteArrayList<Received>()
    private val server = HttpServer.create(InetSocketAddress("127.0.0.1", 0), 0)

    init {
        server.createContext("/") { exchange ->
            val headers = java.util.TreeMap<String, String>(String.CASE_INSENSITIVE_ORDER)
            for ((k, v) in exchange.requestHeaders) headers[k] = v.last()
            val request = Received(exchange.requestMethod, exchange.requestURI.path, exchange.requestURI.query, headers,
                exchange.requestBody.readBytes())
            received.add(request)
            val reply = routes[request.path]?.invoke(request) ?: Reply(404, "{\"error\":\"not_found\",\"message\":\"no route\"}".toByteArray())
            for ((k, v) in reply.headers) exchange.responseHeaders.add(k, v)
            exchange.sendResponseHeaders(reply.status, if (reply.body.isEmpty()) -1 else reply.body.size.toLong())
            if (reply.body.isNotEmpty()) exchange.responseBody.use { it.write(reply.body) }
            exchange.close()
        }
        server.start()
    }

    val url: String get() = "http://127.0.0.1:${server.address.port}"

    override fun close() = server.stop(0)
}

/** ServiceErrors: the error mapping of toolkit.client._raise_for_error (codes, messages, Retry-After). */
package io.duet.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Test

class ServiceErrorsTest {
    private fun error(body: String, retryAfter: String? = null): DuetException =
        ServiceErrors.fromAnswer("POST", "/v1/generate", 429, body.toByteArray(), retryAfter)

    @Test
    fun codeAndMessageFromTheJsonBody() {
        val e = error("{\"error\": \"rate_limited\", \"message\": \"slow down\"}")
        assertEquals(Reason.SERVICE, e.reason)
        assertEquals(429, e.status)
        assertEquals("rate_limited", e.code)
        assertEquals("POST /v1/generate: 429 rate_limited: slow down", e.message)
    }

    @Test
    fun numbersAreTakenInTheirTextForm() {
        assertEquals("42", error("{\"error\": 42, \"message\": 7}").code)
        assertTrue(error("{\"error\": 42, \"message\": 7}").message!!.endsWith("42: 7"))
        assertEquals("-3", error("{\"error\": -3, \"message\": \"m\"}").code)
        // as Python's str() of the float json.loads reads
        assertEquals("1.5", error("{\"error\": 1.5, \"message\": \"m\"}").code)
        assertEquals("100000.0", error("{\"error\": 1E5, \"message\": \"m\"}").code)
        assertEquals("1e+16", error("{\"error\": 1e16, \"message\": \"m\"}").code)
        assertEquals("1.5e-05", error("{\"error\": 0.000015, \"message\": \"m\"}").code)
        assertEquals("-0.0", error("{\"error\": -0.0, \"message\": \"m\"}").code)
    }

    @Test
    fun otherBodiesAreHttpErrorWithTheFirst200Characters() {
        for (body in listOf("Internal Server Error", "{\"error\": \"x\"}", "{\"message\": \"x\"}", "[\"error\", \"message\"]",
                "{\"error\": true, \"message\": \"m\"}", "{\"error\": null, \"message\": \"m\"}",
                "{\"error\": {\"a\": 1}, \"message\": \"m\"}", "")) {
            val e = error(body)
            assertEquals(body, "http_error", e.code)
            assertEquals("POST /v1/generate: 429 http_error: $body", e.message)
        }
        val long = error("é".repeat(300))
        assertTrue(long.message, long.message!!.endsWith(": " + "é".repeat(200)))
    }

    @Test
    fun retryAfterIsWholeSecondsOnly() {
        assertEquals(2.0, error("{}", "2").retryAfterSeconds!!, 0.0)
        assertEquals(120.0, error("{}", " 120 ").retryAfterSeconds!!, 0.0)
        assertEquals(0.0, error("{}", "0").retryAfterSeconds!!, 0.0)
        for (header in listOf("2.5", "-1", "+3", "1e3", "", " ", "Fri, 07 Nov 2025 08:00:00 GMT", "NaN", "Infinity")) {
            assertNull(header, error("{}", header).retryAfterSeconds)
        }
        assertNull(error("{}", null).retryAfterSeconds)
    }

    @Test
    fun noAnswerIsStatusZero() {
        val e = ServiceErrors.noAnswer("GET", "/v1/manifest", java.io.IOException("refused"))
        assertEquals(Reason.SERVICE, e.reason)
        assertEquals(0, e.status)
        assertTrue(e.message!!.contains("no answer from the service"))
    }
}

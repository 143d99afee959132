/** LatencyStats: numpy's mean, percentile (linear) and the 10% trimmed mean. */
package io.duet.core

import org.junit.Assert.assertEquals
import org.junit.Test

class LatencyStatsTest {
    @Test
    fun matchesNumpy() {
        // numpy: mean 5.791666666666667, percentile 50/90/99 = 5.75, 9.975, 11.78; trimmed (1 each end) 5.7
        val s = LatencyStats.of(listOf(5.0, 1.0, 3.5, 2.25, 10.0, 7.0, 4.0, 6.5, 8.0, 9.75, 0.5, 12.0))
        assertEquals(12, s.count)
        assertEquals(5.791666666666667, s.avg, 1e-12)
        assertEquals(5.75, s.p50, 1e-12)
        assertEquals(9.975, s.p90, 1e-12)
        assertEquals(11.78, s.p99, 1e-12)
        assertEquals(5.7, s.trimmean, 1e-12)
    }

    @Test
    fun fewSamples() {
        val one = LatencyStats.of(listOf(3.0))
        assertEquals(3.0, one.p99, 0.0)
        assertEquals(3.0, one.trimmean, 0.0)
        val nine = LatencyStats.of((1..9).map { it.toDouble() }) // floor(0.9) = 0: nothing trimmed
        assertEquals(5.0, nine.trimmean, 0.0)
    }

    @Test(expected = IllegalArgumentException::class)
    fun noSamples() {
        LatencyStats.of(emptyList())
    }
}

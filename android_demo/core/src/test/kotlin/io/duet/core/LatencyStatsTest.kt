/** LatencyStats: numpy's mean (pairwise summation), percentile (linear, two-sided) and the 10% trimmed mean, exactly. */
package io.duet.core

import org.junit.Assert.assertEquals
import org.junit.Test

class LatencyStatsTest {
    // expected values: repr(float(...)) of numpy 2.4 for the same lists; compared with == (delta 0)

    @Test
    fun matchesNumpy() {
        val s = LatencyStats.of(listOf(5.0, 1.0, 3.5, 2.25, 10.0, 7.0, 4.0, 6.5, 8.0, 9.75, 0.5, 12.0))
        assertEquals(12, s.count)
        assertEquals(5.791666666666667, s.avg, 0.0)
        assertEquals(5.75, s.p50, 0.0)
        assertEquals(9.975, s.p90, 0.0)
        assertEquals(11.780000000000001, s.p99, 0.0) // a + (b - a) * t would give 11.78
        assertEquals(5.7, s.trimmean, 0.0)
    }

    @Test
    fun manySamplesUseNumpysPairwiseSum() {
        val samples = (0 until 300).map { ((it * 37) % 101) / 7.0 + it * 0.001 }
        val s = LatencyStats.of(samples)
        assertEquals(7.277119047619049, s.avg, 0.0) // a plain left-to-right sum gives 7.2771190476190455
        assertEquals(7.274109523809524, s.trimmean, 0.0)
        assertEquals(7.252928571428571, s.p50, 0.0)
        assertEquals(12.995242857142859, s.p90, 0.0)
        assertEquals(14.316605714285714, s.p99, 0.0)
    }

    @Test
    fun fewSamples() {
        val one = LatencyStats.of(listOf(3.0))
        assertEquals(3.0, one.p99, 0.0)
        assertEquals(3.0, one.trimmean, 0.0)
        val nine = LatencyStats.of((1..9).map { it.toDouble() }) // floor(0.9) = 0: nothing trimmed
        assertEquals(5.0, nine.trimmean, 0.0)
        val ten = LatencyStats.of((1..10).map { it.toDouble() }) // one trimmed from each end
        assertEquals(5.5, ten.trimmean, 0.0)
    }

    @Test(expected = IllegalArgumentException::class)
    fun noSamples() {
        LatencyStats.of(emptyList())
    }
}

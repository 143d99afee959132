/** LatencyStats: minibench's avg and trimmed mean (sorted, subList(n/10, n*9/10), summed in order), numpy's percentiles. */
package io.duet.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test

class LatencyStatsTest {
    // expected values: Python's plain ascending sums (toolkit.bench.records) and numpy 2.4's percentiles; compared with ==

    @Test
    fun matchesMinibenchAndNumpy() {
        val s = LatencyStats.of(listOf(5.0, 1.0, 3.5, 2.25, 10.0, 7.0, 4.0, 6.5, 8.0, 9.75, 0.5, 12.0))
        assertEquals(12, s.count)
        assertEquals(5.791666666666667, s.avg, 0.0)
        assertEquals(5.75, s.p50, 0.0)
        assertEquals(9.975, s.p90, 0.0)
        assertEquals(11.780000000000001, s.p99, 0.0) // a + (b - a) * t would give 11.78
        assertEquals(5.222222222222222, s.trimmean, 0.0) // subList(1, 10): one cut below, two above
    }

    @Test
    fun manySamplesAreSummedInAscendingOrder() {
        val samples = (0 until 300).map { ((it * 37) % 101) / 7.0 + it * 0.001 }
        val s = LatencyStats.of(samples)
        assertEquals(7.277119047619047, s.avg, 0.0) // numpy's pairwise sum in sample order gives 7.277119047619049
        assertEquals(7.274109523809526, s.trimmean, 0.0)
        assertEquals(7.252928571428571, s.p50, 0.0)
        assertEquals(12.995242857142859, s.p90, 0.0)
        assertEquals(14.316605714285714, s.p99, 0.0)
    }

    @Test
    fun theTrimmedListIsMinibenchsNotACutAtBothEnds() {
        val fifteen = LatencyStats.of((0 until 15).map { 15.0 * (it % 7) + it })
        assertEquals(44.666666666666664, fifteen.trimmean, 0.0) // subList(1, 13); floor(n/10) at both ends: 48.615...
        val nine = LatencyStats.of((1..9).map { it.toDouble() }) // subList(0, 8): the largest is dropped
        assertEquals(4.5, nine.trimmean, 0.0)
        val ten = LatencyStats.of((1..10).map { it.toDouble() }) // subList(1, 9)
        assertEquals(5.5, ten.trimmean, 0.0)
        val one = LatencyStats.of(listOf(3.0))
        assertEquals(3.0, one.p99, 0.0)
        assertTrue(one.trimmean.isNaN()) // subList(0, 0): no trimmed mean (its record is left out)
    }

    @Test(expected = IllegalArgumentException::class)
    fun noSamples() {
        LatencyStats.of(emptyList())
    }
}

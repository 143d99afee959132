/** Latency statistics over samples in ms: mean, 10% trimmed mean, and percentiles by numpy.percentile's linear rule. */
package io.duet.core

/** Summary of latency samples (ms). */
data class LatencyStats(val count: Int, val avg: Double, val trimmean: Double, val p50: Double, val p90: Double, val p99: Double) {
    companion object {
        /** The statistics of [samplesMs] (at least one sample). */
        fun of(samplesMs: List<Double>): LatencyStats {
            require(samplesMs.isNotEmpty()) { "no latency samples" }
            val sorted = samplesMs.sorted()
            return LatencyStats(sorted.size, sorted.average(), trimmedMean(sorted), percentile(sorted, 50.0),
                percentile(sorted, 90.0), percentile(sorted, 99.0))
        }

        /** numpy.percentile's default: position (n - 1) * q / 100, linear between the two closest ranks. */
        fun percentile(sorted: List<Double>, q: Double): Double {
            val position = (sorted.size - 1) * q / 100.0
            val lo = Math.floor(position).toInt()
            val hi = Math.min(lo + 1, sorted.size - 1)
            return sorted[lo] + (sorted[hi] - sorted[lo]) * (position - lo)
        }

        /** The mean after removing floor(0.1 * n) samples from each end of the sorted list. */
        fun trimmedMean(sorted: List<Double>): Double {
            val cut = (0.1 * sorted.size).toInt()
            return sorted.subList(cut, sorted.size - cut).average()
        }
    }
}

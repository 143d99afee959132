/** Latency statistics over samples in ms, bit-for-bit numpy's: np.mean, the 10% trimmed mean and np.percentile (linear). */
package io.duet.core

/** Summary of latency samples (ms). */
data class LatencyStats(val count: Int, val avg: Double, val trimmean: Double, val p50: Double, val p90: Double, val p99: Double) {
    companion object {
        /** The statistics of [samplesMs] (at least one sample), each equal to numpy's result for the same list. */
        fun of(samplesMs: List<Double>): LatencyStats {
            require(samplesMs.isNotEmpty()) { "no latency samples" }
            val sorted = samplesMs.sorted()
            return LatencyStats(sorted.size, mean(samplesMs), trimmedMean(sorted), percentile(sorted, 50.0),
                percentile(sorted, 90.0), percentile(sorted, 99.0))
        }

        /**
         * numpy.percentile's default ("linear"): pos = (n - 1) * (q / 100), i = floor(pos), t = pos - i,
         * a = sorted[i], b = sorted[min(i + 1, n - 1)]; a + (b - a) * t when t < 0.5, else b - (b - a) * (1 - t).
         */
        fun percentile(sorted: List<Double>, q: Double): Double {
            require(sorted.isNotEmpty()) { "no latency samples" }
            val position = (sorted.size - 1) * (q / 100.0)
            val i = Math.floor(position).toInt()
            val t = position - i
            val a = sorted[i]
            val b = sorted[Math.min(i + 1, sorted.size - 1)]
            return if (t < 0.5) a + (b - a) * t else b - (b - a) * (1 - t)
        }

        /** The mean after removing floor(0.1 * n) samples from each end of the sorted list (numpy's mean of the rest). */
        fun trimmedMean(sorted: List<Double>): Double {
            val cut = (0.1 * sorted.size).toInt()
            return mean(sorted.subList(cut, sorted.size - cut))
        }

        /** numpy.mean: numpy's pairwise sum of [values] in their order, divided by their count. */
        fun mean(values: List<Double>): Double {
            require(values.isNotEmpty()) { "no latency samples" }
            return pairwiseSum(values, 0, values.size) / values.size
        }

        /**
         * numpy's pairwise summation (umath loops_utils pairwise_sum): fewer than 8 values in order; up to 128 in
         * eight interleaved partial sums; more split in two halves (the first a multiple of 8).
         */
        private fun pairwiseSum(a: List<Double>, start: Int, n: Int): Double {
            if (n < 8) {
                var res = 0.0
                for (i in start until start + n) res += a[i]
                return res
            }
            if (n <= 128) {
                val r = DoubleArray(8) { a[start + it] }
                var i = 8
                while (i < n - n % 8) {
                    for (j in 0 until 8) r[j] += a[start + i + j]
                    i += 8
                }
                var res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
                while (i < n) {
                    res += a[start + i]
                    i += 1
                }
                return res
            }
            var n2 = n / 2
            n2 -= n2 % 8
            return pairwiseSum(a, start, n2) + pairwiseSum(a, start + n2, n - n2)
        }
    }
}

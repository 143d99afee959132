/** Latency statistics over samples in ms: minibench's avg and trimmed mean, numpy's linear percentiles, to the last bit. */
package io.duet.core

/** Summary of latency samples (ms); [trimmean] is NaN (its record left out) when the trimmed list is empty. */
data class LatencyStats(val count: Int, val avg: Double, val trimmean: Double, val p50: Double, val p90: Double, val p99: Double) {
    companion object {
        /**
         * The statistics of [samplesMs] (at least one sample), as ExecuTorch's minibench (ModelRunner) computes avg and
         * trimmean: the samples sorted, `average()` of all and of `subList(n / 10, n * 9 / 10)`; the percentiles are
         * numpy's. Python's toolkit.bench.records and DuetKit compute the same doubles (golden `stats`).
         */
        fun of(samplesMs: List<Double>): LatencyStats {
            require(samplesMs.isNotEmpty()) { "no latency samples" }
            val sorted = samplesMs.sorted()
            val n = sorted.size
            return LatencyStats(n, sorted.average(), sorted.subList(n / 10, n * 9 / 10).average(), percentile(sorted, 50.0),
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
    }
}

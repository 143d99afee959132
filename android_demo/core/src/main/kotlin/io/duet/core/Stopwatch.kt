/** Wall-clock timing of one block in milliseconds (the demo screen's timings; the benchmark's are BenchmarkRun's). */
package io.duet.core

/** Timing on System.nanoTime. */
object Stopwatch {
    /** Run [block]; its result and how long it took, in ms. */
    fun <T> timed(block: () -> T): Pair<T, Double> {
        val start = System.nanoTime()
        val result = block()
        return Pair(result, (System.nanoTime() - start) / 1e6)
    }
}

/** Wall-clock timing in milliseconds: one block, or warm-up calls then timed calls (the benchmark's samples). */
package io.duet.core

/** Timing helpers on System.nanoTime. */
object Stopwatch {
    /** Run [block]; its result and how long it took, in ms. */
    fun <T> timed(block: () -> T): Pair<T, Double> {
        val start = System.nanoTime()
        val result = block()
        return Pair(result, (System.nanoTime() - start) / 1e6)
    }

    /** Call [block] [warmUp] times untimed, then [iterations] times timed; the samples in ms. */
    fun samples(warmUp: Int, iterations: Int, block: () -> Unit): List<Double> {
        require(warmUp >= 0 && iterations >= 1) { "need warmUp >= 0 and iterations >= 1, got $warmUp and $iterations" }
        repeat(warmUp) { block() }
        return List(iterations) { timed(block).second }
    }
}

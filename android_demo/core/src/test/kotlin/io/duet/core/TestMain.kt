/** test.sh's runner: JUnitCore over the given classes, plus a count of skipped tests, which fail under DUET_REQUIRE_LIVE=1. */
package io.duet.core

import org.junit.internal.TextListener
import org.junit.runner.JUnitCore
import kotlin.system.exitProcess

object TestMain {
    @JvmStatic
    fun main(args: Array<String>) {
        val core = JUnitCore()
        core.addListener(TextListener(System.out))
        val result = core.run(*args.map { Class.forName(it) }.toTypedArray())
        val skipped = result.ignoreCount + result.assumptionFailureCount
        val passed = Math.max(0, result.runCount - result.failureCount - result.assumptionFailureCount)
        val required = System.getenv("DUET_REQUIRE_LIVE") == "1"
        println("kotlin-core: $passed passed, ${result.failureCount} failed, $skipped skipped")
        println("(${"%.1f".format(result.runTime / 1000.0)} s)")
        if (skipped > 0 && required) {
            println("FAIL: DUET_REQUIRE_LIVE=1 but $skipped tests were skipped")
            exitProcess(1)
        }
        exitProcess(if (result.wasSuccessful()) 0 else 1)
    }
}

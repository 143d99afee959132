/** The device's rule for asking (TriggeredRefresh) and the recommendation window; the trigger's arithmetic is GoldenTest's. */
package io.duet.core

import io.duet.core.Fixtures.goodBlob
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Test

class RequestTriggerTest {
    private val slots = SlotBlob.decode(goodBlob(), Fixtures.manifest())
    private val installed = RefreshOutcome(true, slots, null, 1.0)
    private val refused = RefreshOutcome(false, slots, Refusal(Reason.SERVICE, "503", 503, "busy"), 1.0)
    private fun window(vararg years: Double): List<DoubleArray> = years.map { doubleArrayOf(it) }

    @Test
    fun asksFirstThenOnlyWhenTheWindowMovedPastTheThresholdAndRestartsOnlyAfterAnInstall() {
        val rule = TriggeredRefresh(TriggerConfig(TriggerScore.WINDOW, 1, 0.5))
        var calls = 0
        val first = rule.onSample(window(30.0)) { calls += 1; installed }
        assertTrue(first.decision.request)
        assertEquals(1, calls)
        val quiet = rule.onSample(window(30.0, 30.25)) { calls += 1; installed }
        assertFalse(quiet.decision.request)
        assertNull(quiet.refresh)
        assertEquals(1, calls)
        val failed = rule.onSample(window(30.25, 31.0)) { calls += 1; refused }
        assertTrue(failed.decision.request)
        assertFalse(failed.refresh!!.installed)
        val again = rule.onSample(window(31.0, 31.0)) { calls += 1; installed } // still 1.0 from 30.0: asks again
        assertEquals(1.0, again.decision.score, 0.0)
        assertTrue(again.refresh!!.installed)
        assertFalse(rule.onSample(window(31.0, 31.25)) { calls += 1; installed }.decision.request)
        assertEquals(3, calls)
    }

    @Test
    fun theRecommendationWindowIsTheBodysTimestampsInYears() {
        val manifest = Fixtures.recommendation() // at most 3 items, timestamps required
        val now = 1_577_836_800L // 2020-01-01
        val window = Recommendation.triggerWindow(manifest, listOf(4, 5, 6, 7), now)
        assertEquals(3, window.size)
        assertEquals(now / RequestTrigger.SECONDS_PER_YEAR, window[2][0], 0.0)
        assertEquals((now - 120) / RequestTrigger.SECONDS_PER_YEAR, window[0][0], 0.0)
        assertEquals(listOf(0.0), Recommendation.triggerWindow(Fixtures.manifest(), listOf(4), now).map { it[0] })
        assertEquals(TriggerScore.WINDOW, TriggerConfig.parse(TriggeredRefresh.DEFAULT_JSON).score)
    }
}

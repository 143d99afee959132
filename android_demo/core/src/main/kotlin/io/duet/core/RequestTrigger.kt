/** The request trigger: a drift score the device computes by itself, and the decision to ask for new slots (docs/formats.md). */
package io.duet.core

import com.google.gson.JsonObject
import com.google.gson.JsonPrimitive

/** Which drift score a trigger computes; [id] is the configuration's `score`. */
enum class TriggerScore(val id: String) {
    /** RMS distance between the mean features of the latest samples now and at the last request. */
    WINDOW("window"),

    /** 1 - the mean confidence of the current slots on the latest samples scored since the last request. */
    CONFIDENCE("confidence");

    companion object {
        fun of(id: String): TriggerScore? = values().firstOrNull { it.id == id }
    }
}

/** A trigger's configuration (`trigger.json`, written by `cli.py evaluate --refresh trigger`). */
data class TriggerConfig(val score: TriggerScore, val window: Int, val threshold: Double, val budget: Double? = null) {
    companion object {
        const val MAX_WINDOW = 1024
        private val KEYS = setOf("score", "window", "threshold", "budget")

        /** Parse and check a configuration; anything else than the documented object is a [Reason.MANIFEST] refusal. */
        fun parse(text: String): TriggerConfig {
            val obj = parseStrictJson(text) as? JsonObject ?: refuse(Reason.MANIFEST, "trigger: expected a JSON object")
            val unknown = obj.keySet().filter { it !in KEYS }.sorted()
            if (unknown.isNotEmpty()) refuse(Reason.MANIFEST, "trigger: unknown keys $unknown")
            val fields = JsonFields(obj, "trigger", Reason.MANIFEST)
            val scoreId = fields.string("score")
            val score = TriggerScore.of(scoreId) ?: fields.fail("score must be window or confidence, found '$scoreId'")
            val window = fields.long("window")
            if (window < 1 || window > MAX_WINDOW) fields.fail("window must be from 1 to $MAX_WINDOW, found $window")
            return TriggerConfig(score, window.toInt(), number(fields, obj, "threshold")!!,
                if (obj.has("budget")) number(fields, obj, "budget") else null)
        }

        private fun number(fields: JsonFields, obj: JsonObject, key: String): Double? {
            if (!obj.has(key)) fields.fail("required field '$key' is missing")
            val value = obj.get(key) as? JsonPrimitive
            if (value == null || !value.isNumber) fields.fail("'$key' should be a number")
            val number = value.asDouble
            if (number.isNaN() || number.isInfinite()) fields.fail("'$key' should be finite")
            return number
        }
    }
}

/** One step's score and whether the device asks for new slots now. */
data class TriggerDecision(val score: Double, val request: Boolean)

/**
 * A device's trigger state: the window summary at the last installed request and the confidences since then. Call
 * [start] when slots were installed, [step] after each new sample; ask for slots when [TriggerDecision.request], and
 * call [start] again once they are installed (a failed request keeps the state: the next step asks again). The
 * arithmetic is Python's `toolkit.protocol.trigger`, operation for operation (the golden vectors check the bits).
 */
class RequestTrigger(val config: TriggerConfig) {
    private var anchor: DoubleArray? = null
    private val confidences = ArrayList<Double>()

    /** New slots were installed from the device's data as [window] (features per sample, oldest first) stands. */
    fun start(window: List<DoubleArray>) {
        anchor = summary(window)
        confidences.clear()
    }

    /** A new sample joined [window]; [confidence] is how sure the current slots were of it (null: not known). */
    fun step(window: List<DoubleArray>, confidence: Double? = null): TriggerDecision {
        if (confidence != null) {
            if (!(confidence >= 0.0 && confidence <= 1.0)) refuse(Reason.SLOT_SHAPE, "trigger: a confidence must be in [0, 1], found $confidence")
            confidences.add(confidence)
            while (confidences.size > config.window) confidences.removeAt(0)
        }
        val now = summary(window)
        val last = anchor ?: return TriggerDecision(Double.POSITIVE_INFINITY, true)
        val score = when (config.score) {
            TriggerScore.WINDOW -> distance(now, last)
            TriggerScore.CONFIDENCE -> if (confidences.isEmpty()) 0.0 else {
                var total = 0.0
                for (value in confidences) total += value
                1.0 - total / confidences.size
            }
        }
        return TriggerDecision(score, score > config.threshold)
    }

    /** The mean of the last `window` samples' features, each summed from the oldest. */
    private fun summary(window: List<DoubleArray>): DoubleArray {
        if (window.isEmpty()) refuse(Reason.SLOT_SHAPE, "trigger: a window needs at least one sample")
        val kept = window.subList(Math.max(0, window.size - config.window), window.size)
        val width = kept[0].size
        if (width == 0 || kept.any { it.size != width }) {
            refuse(Reason.SLOT_SHAPE, "trigger: every sample of a window needs the same number (>= 1) of features, found ${kept.map { it.size }.toSortedSet()}")
        }
        val totals = DoubleArray(width)
        for (row in kept) {
            for (j in 0 until width) {
                if (row[j].isNaN() || row[j].isInfinite()) refuse(Reason.SLOT_SHAPE, "trigger: features must be finite numbers")
                totals[j] += row[j]
            }
        }
        return DoubleArray(width) { totals[it] / kept.size }
    }

    private fun distance(now: DoubleArray, anchor: DoubleArray): Double {
        if (now.size != anchor.size) refuse(Reason.SLOT_SHAPE, "trigger: the window has ${now.size} features, the last request's had ${anchor.size}")
        var total = 0.0
        for (j in now.indices) {
            val difference = now[j] - anchor[j]
            total += difference * difference
        }
        return Math.sqrt(total / now.size)
    }

    companion object {
        /** Seconds in the recommendation feature's unit, a Julian year (unix seconds / this = years since 1970). */
        const val SECONDS_PER_YEAR = 31_557_600.0

        /** The recommendation task's features: each sample's click time in years since 1970, oldest first. */
        fun timestampFeatures(timestamps: LongArray): List<DoubleArray> = timestamps.map { doubleArrayOf(it / SECONDS_PER_YEAR) }
    }
}

/** What [TriggeredRefresh.onSample] did: the trigger's decision and, when it asked, the refresh's outcome. */
data class TriggeredOutcome(val decision: TriggerDecision, val refresh: RefreshOutcome?)

/**
 * The device's rule for asking: after each new sample the trigger decides; when it fires the device refreshes its
 * slots ([DeviceSlots.refresh], whose fallback keeps the last good ones) and, only when new slots were installed,
 * the trigger starts again from the window they were generated from. The first call always asks (no slots yet).
 */
class TriggeredRefresh(val config: TriggerConfig) {
    private val trigger = RequestTrigger(config)

    /** The trigger's step on [window] and [confidence]; [refresh] runs only when it fires. */
    @Synchronized
    fun onSample(window: List<DoubleArray>, confidence: Double? = null, refresh: () -> RefreshOutcome): TriggeredOutcome {
        val decision = trigger.step(window, confidence)
        if (!decision.request) return TriggeredOutcome(decision, null)
        val outcome = refresh()
        if (outcome.installed) trigger.start(window)
        return TriggeredOutcome(decision, outcome)
    }

    companion object {
        /** The demo's trigger when none is configured: the window score with threshold 0 asks whenever the latest
         * samples moved (today's "ask on every new sample"); use a run's trigger.json to ask within a budget. */
        const val DEFAULT_JSON = """{"score": "window", "window": 5, "threshold": 0.0}"""
    }
}

/** The recommendation demo's inputs and ranking: history from recent items, candidate chunks, top-N by program score. */
package io.duet.core

import com.google.gson.JsonArray
import com.google.gson.JsonObject

/** One ranked item. */
data class Scored(val item: Int, val score: Float)

/** Recent item ids typed by a user: the ids kept (oldest first) and the tokens that were not ids (shown, not sent). */
data class RecentItems(val ids: List<Int>, val ignored: List<String>)

/**
 * Recommendation-task glue for the demo apps (the program takes `history` (1, L) and `candidates` (1, C) int32 and
 * returns one score per candidate). Everything else in the core is task-agnostic.
 */
object Recommendation {
    const val HISTORY = "history"
    const val CANDIDATES = "candidates"

    /** The device id of the benchmark's generate body. */
    const val BENCHMARK_DEVICE_ID = "benchmark"

    /** The longest device id the service takes (the request schema's device_id maxLength). */
    const val MAX_DEVICE_ID_CHARS = 128

    /**
     * The demo's device id: "<platform>-<installation id>" in lowercase ("android-1b4e..."), at most 128
     * characters; the app keeps the installation id (a random UUID) across launches. The same rule as DuetKit's.
     */
    fun deviceId(platform: String, installationId: String): String {
        val id = "$platform-$installationId"
        val lower = StringBuilder(id.length)
        for (c in id) lower.append(Character.toLowerCase(c))
        return lower.toString().take(MAX_DEVICE_ID_CHARS)
    }

    /**
     * Recent item ids as typed (oldest first), separated by commas and white space: a whole number from 1 to
     * Int.MAX_VALUE is an id; anything else (0, negatives, words, numbers too large) is ignored and listed. The same
     * rule as DuetKit's Recommendation.parseRecent.
     */
    fun parseRecent(text: String): RecentItems {
        val ids = ArrayList<Int>()
        val ignored = ArrayList<String>()
        for (token in text.split(',', ' ', '\t', '\n', '\r').filter { it.isNotEmpty() }) {
            val id = if (token.all { it in '0'..'9' }) token.toIntOrNull() else null
            if (id != null && id >= 1) ids.add(id) else ignored.add(token)
        }
        return RecentItems(ids, ignored)
    }

    /** The largest item id ranked when the manifest has no request schema saying which ids exist. */
    const val FALLBACK_MAX_ITEM_ID = 1000

    /** Seconds between the synthetic timestamps of a body's items (the last one is "now"). */
    const val TIMESTAMP_SPACING_SECONDS = 60L

    private fun itemsSchema(manifest: Manifest): JsonObject? {
        val schema = manifest.requestSchema?.let { parseStrictJson(it) as? JsonObject } ?: return null
        return (schema.get("properties") as? JsonObject)?.get("items") as? JsonObject
    }

    /** The largest valid item id, from the manifest's request schema (items.items.maximum), or null. */
    fun maxItemId(manifest: Manifest): Int? {
        val max = (itemsSchema(manifest)?.get("items") as? JsonObject)?.get("maximum")
        return max?.asIntegerOrNull()?.takeIf { it >= 1 && it <= Int.MAX_VALUE }?.toInt()
    }

    /** The most items a generate body may hold (the request schema's items.maxItems), or null. */
    fun maxContextItems(manifest: Manifest): Int? {
        val max = itemsSchema(manifest)?.get("maxItems")
        return max?.asIntegerOrNull()?.takeIf { it >= 1 && it <= Int.MAX_VALUE }?.toInt()
    }

    /** True when the request schema requires timestamps beside the items. */
    fun needsTimestamps(manifest: Manifest): Boolean {
        val schema = manifest.requestSchema?.let { parseStrictJson(it) as? JsonObject } ?: return false
        val required = schema.get("required") as? JsonArray ?: return false
        return required.any { it.asTextOrNull() == "timestamps" }
    }

    /** [count] timestamps [TIMESTAMP_SPACING_SECONDS] apart, oldest first, the last at [nowSeconds]. */
    fun syntheticTimestamps(count: Int, nowSeconds: Long): LongArray =
        LongArray(count) { nowSeconds - (count - 1 - it) * TIMESTAMP_SPACING_SECONDS }

    /**
     * The generate body of a device: its id and the last [maxContextItems] of [recent] items (oldest first); when
     * the schema wants timestamps, one per item kept, [TIMESTAMP_SPACING_SECONDS] apart, the last at [nowSeconds].
     */
    fun body(manifest: Manifest, deviceId: String, recent: List<Int>, nowSeconds: Long): RequestBody {
        require(recent.isNotEmpty()) { "a device needs at least one recent item" }
        val kept = recent.takeLast(maxContextItems(manifest) ?: recent.size)
        val builder = RequestBody.Builder().text("device_id", deviceId).ints("items", kept.toIntArray())
        if (needsTimestamps(manifest)) {
            builder.ints("timestamps", syntheticTimestamps(kept.size, nowSeconds))
        }
        return builder.build()
    }

    /**
     * The trigger's window for the same samples as [body]: each kept item's timestamp in years
     * ([RequestTrigger.timestampFeatures]); a program whose body has no timestamps gives every item the feature 0
     * (its window score stays 0: use the confidence score).
     */
    fun triggerWindow(manifest: Manifest, recent: List<Int>, nowSeconds: Long): List<DoubleArray> {
        require(recent.isNotEmpty()) { "a device needs at least one recent item" }
        val kept = recent.takeLast(maxContextItems(manifest) ?: recent.size)
        if (!needsTimestamps(manifest)) return kept.map { doubleArrayOf(0.0) }
        return RequestTrigger.timestampFeatures(syntheticTimestamps(kept.size, nowSeconds))
    }

    /** The `history` input: the last L of [recent] (oldest first), left-padded with 0. */
    fun history(manifest: Manifest, recent: List<Int>): TensorData {
        val spec = input(manifest, HISTORY)
        val length = spec.shape.last()
        val kept = recent.takeLast(length)
        val values = IntArray(length)
        kept.forEachIndexed { i, item -> values[length - kept.size + i] = item }
        return TensorData.ints(spec.shape, values)
    }

    /** The candidate pool: ids 1..maxItemId (or 1..[fallbackMax] when the manifest does not say) not in [recent]. */
    fun pool(manifest: Manifest, recent: List<Int>, fallbackMax: Int = FALLBACK_MAX_ITEM_ID): List<Int> {
        val seen = recent.toSet()
        return (1..(maxItemId(manifest) ?: fallbackMax)).filter { it !in seen }
    }

    /** How many candidates one program call scores (C of the `candidates` input (1, C)). */
    fun candidateCount(manifest: Manifest): Int = input(manifest, CANDIDATES).shape.last()

    /** [pool] in program calls: chunks of C ids, the last one padded with its first id. */
    fun chunks(manifest: Manifest, pool: List<Int>): List<IntArray> {
        val c = candidateCount(manifest)
        return pool.chunked(c).map { chunk -> IntArray(c) { if (it < chunk.size) chunk[it] else chunk[0] } }
    }

    /** How many program calls ranking a pool of [poolSize] ids takes. */
    fun calls(manifest: Manifest, poolSize: Int): Int {
        val c = candidateCount(manifest)
        return (poolSize + c - 1) / c
    }

    /**
     * The [n] best items of [pool] for a device with [recent] items under [slots]: the pool is scored in [chunks],
     * each chunk one program call through [run]; ties go to the lower id.
     */
    fun rank(manifest: Manifest, recent: List<Int>, pool: List<Int>, slots: SlotSet, n: Int, target: Target? = null,
             run: (List<CallArgument>) -> FloatArray): List<Scored> {
        require(pool.isNotEmpty()) { "no candidates to rank" }
        val spec = input(manifest, CANDIDATES)
        val c = spec.shape.last()
        val history = history(manifest, recent)
        val scored = ArrayList<Scored>(pool.size)
        for ((k, ids) in chunks(manifest, pool).withIndex()) {
            val args = CallAssembly.arguments(manifest, mapOf(HISTORY to history, CANDIDATES to TensorData.ints(spec.shape, ids)),
                slots, target)
            val scores = run(args)
            if (scores.size != c) refuse(Reason.SLOT_SHAPE, "the program returned ${scores.size} scores for $c candidates")
            val real = Math.min(c, pool.size - k * c)
            for (i in 0 until real) scored.add(Scored(ids[i], scores[i]))
        }
        return scored.sortedWith(compareByDescending<Scored> { it.score }.thenBy { it.item }).take(n)
    }

    private fun input(manifest: Manifest, name: String): TensorSpec = manifest.inputs.firstOrNull { it.name == name }
        ?: refuse(Reason.MANIFEST, "the ${manifest.task} program has no input '$name'; it takes ${manifest.inputs.map { it.name }}")
}

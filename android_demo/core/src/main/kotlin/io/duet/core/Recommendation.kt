/** The recommendation demo's inputs and ranking: history from recent items, candidate chunks, top-N by program score. */
package io.duet.core

import com.google.gson.JsonObject

/** One ranked item. */
data class Scored(val item: Int, val score: Float)

/**
 * Recommendation-task glue for the demo apps (the program takes `history` (1, L) and `candidates` (1, C) int32 and
 * returns one score per candidate). Everything else in the core is task-agnostic.
 */
object Recommendation {
    const val HISTORY = "history"
    const val CANDIDATES = "candidates"

    /** The largest valid item id, from the manifest's request schema (items.items.maximum), or null. */
    fun maxItemId(manifest: Manifest): Int? {
        val schema = manifest.requestSchema?.let { parseStrictJson(it) as? JsonObject } ?: return null
        val max = schema.getAsJsonObject("properties")?.getAsJsonObject("items")?.getAsJsonObject("items")?.get("maximum")
        return max?.asIntegerOrNull()?.toInt()
    }

    /** True when the request schema requires timestamps beside the items. */
    fun needsTimestamps(manifest: Manifest): Boolean {
        val schema = manifest.requestSchema?.let { parseStrictJson(it) as? JsonObject } ?: return false
        return schema.getAsJsonArray("required")?.any { it.asTextOrNull() == "timestamps" } ?: false
    }

    /**
     * The generate body of a device: its id and [recent] items (oldest first); when the schema wants timestamps,
     * one per item, [spacingSeconds] apart and ending at [nowSeconds].
     */
    fun body(manifest: Manifest, deviceId: String, recent: List<Int>, nowSeconds: Long, spacingSeconds: Long = 60): RequestBody {
        require(recent.isNotEmpty()) { "a device needs at least one recent item" }
        val builder = RequestBody.Builder().text("device_id", deviceId).ints("items", recent.toIntArray())
        if (needsTimestamps(manifest)) {
            builder.ints("timestamps", LongArray(recent.size) { nowSeconds - (recent.size - 1 - it) * spacingSeconds })
        }
        return builder.build()
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
    fun pool(manifest: Manifest, recent: List<Int>, fallbackMax: Int): List<Int> {
        val seen = recent.toSet()
        return (1..(maxItemId(manifest) ?: fallbackMax)).filter { it !in seen }
    }

    /**
     * The [n] best items of [pool] for a device with [recent] items under [slots]: the pool is scored C at a time
     * (the last chunk padded with its first id), each chunk one program call through [run].
     */
    fun rank(manifest: Manifest, recent: List<Int>, pool: List<Int>, slots: SlotSet, n: Int, target: Target? = null,
             run: (List<CallArgument>) -> FloatArray): List<Scored> {
        require(pool.isNotEmpty()) { "no candidates to rank" }
        val spec = input(manifest, CANDIDATES)
        val c = spec.shape.last()
        val history = history(manifest, recent)
        val scored = ArrayList<Scored>(pool.size)
        for (chunk in pool.chunked(c)) {
            val ids = IntArray(c) { if (it < chunk.size) chunk[it] else chunk[0] }
            val args = CallAssembly.arguments(manifest, mapOf(HISTORY to history, CANDIDATES to TensorData.ints(spec.shape, ids)),
                slots, target)
            val scores = run(args)
            if (scores.size != c) refuse(Reason.SLOT_SHAPE, "the program returned ${scores.size} scores for $c candidates")
            chunk.forEachIndexed { i, item -> scored.add(Scored(item, scores[i])) }
        }
        return scored.sortedWith(compareByDescending<Scored> { it.score }.thenBy { it.item }).take(n)
    }

    private fun input(manifest: Manifest, name: String): TensorSpec = manifest.inputs.firstOrNull { it.name == name }
        ?: refuse(Reason.MANIFEST, "the ${manifest.task} program has no input '$name'; it takes ${manifest.inputs.map { it.name }}")
}

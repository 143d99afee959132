/** Recommendation glue: history padding, bodies with timestamps, candidate chunks and top-N; ExampleInputs; Stopwatch. */
package io.duet.core

import com.google.gson.Gson
import com.google.gson.JsonParser
import io.duet.core.Fixtures.goodBlob
import io.duet.core.Fixtures.refused
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Test

class RecommendationTest {
    /** The fixture manifest with history (1, 4), candidates (1, 3) and a request schema (ids 1..9, timestamps required). */
    private val manifest: Manifest = run {
        val json = Fixtures.manifestJson()
        json.add("inputs", JsonParser.parseString("""[{"name": "history", "shape": [1, 4], "dtype": "int32", "description": ""},
            {"name": "candidates", "shape": [1, 3], "dtype": "int32", "description": ""}]"""))
        json.add("call_signature", Gson().toJsonTree(listOf("history", "candidates", "head.w", "head.b")))
        json.add("generate", JsonParser.parseString("""{"request_schema": {"type": "object", "required": ["device_id", "items", "timestamps"],
            "properties": {"items": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 9}}}}}"""))
        Manifest.parse(Gson().toJson(json))
    }
    private val slots = SlotBlob.decode(goodBlob(), manifest)

    @Test
    fun schemaFacts() {
        assertEquals(9, Recommendation.maxItemId(manifest))
        assertTrue(Recommendation.needsTimestamps(manifest))
        assertNull(Recommendation.maxItemId(Fixtures.manifest()))
        assertFalse(Recommendation.needsTimestamps(Fixtures.manifest()))
    }

    @Test
    fun bodyHasSpacedTimestampsEndingNow() {
        val body = Recommendation.body(manifest, "phone", listOf(3, 5, 7), nowSeconds = 1000)
        assertEquals("{\"device_id\":\"phone\",\"items\":[3,5,7],\"timestamps\":[880,940,1000]}", body.toJson())
        assertEquals("{\"device_id\":\"phone\",\"items\":[3]}", Recommendation.body(Fixtures.manifest(), "phone", listOf(3), 1000).toJson())
    }

    @Test
    fun historyKeepsTheLastItemsLeftPadded() {
        assertArrayEquals(intArrayOf(0, 0, 3, 5), Recommendation.history(manifest, listOf(3, 5)).intValues())
        assertArrayEquals(intArrayOf(2, 3, 4, 5), Recommendation.history(manifest, listOf(1, 2, 3, 4, 5)).intValues())
        refused(Reason.MANIFEST, "no input 'history'") { Recommendation.history(Fixtures.manifest(), listOf(1)) }
    }

    @Test
    fun rankScoresThePoolInChunksAndKeepsTheBest() {
        val pool = Recommendation.pool(manifest, listOf(2, 4), fallbackMax = 100)
        assertEquals(listOf(1, 3, 5, 6, 7, 8, 9), pool)
        val calls = ArrayList<List<CallArgument>>()
        val top = Recommendation.rank(manifest, listOf(2, 4), pool, slots, n = 3) { args ->
            calls.add(args)
            val ids = args[1].data.intValues()
            FloatArray(ids.size) { (ids[it] % 5).toFloat() } // score = id mod 5: 9 first, then 3 and 8 tied (lower id first)
        }
        assertEquals(3, calls.size) // 7 candidates in chunks of 3
        assertArrayEquals(intArrayOf(9, 9, 9), calls[2][1].data.intValues()) // last chunk padded with its first id
        assertArrayEquals(intArrayOf(0, 0, 2, 4), calls[0][0].data.intValues())
        assertEquals(listOf(Scored(9, 4f), Scored(3, 3f), Scored(8, 3f)), top)
    }

    @Test
    fun aProgramReturningTheWrongNumberOfScoresIsRefused() {
        refused(Reason.SLOT_SHAPE, "returned 2 scores for 3 candidates") {
            Recommendation.rank(manifest, listOf(1), listOf(5), slots, 1) { FloatArray(2) }
        }
    }

    @Test
    fun exampleInputsFitEveryInput() {
        val inputs = ExampleInputs.of(manifest)
        assertArrayEquals(intArrayOf(1, 2, 3, 4), inputs.getValue("history").intValues())
        val generic = ExampleInputs.of(Fixtures.manifest())
        assertArrayEquals(floatArrayOf(0.5f, 0.5f, 0.5f, 0.5f), generic.getValue("mask").floatValues(), 0f)
        assertEquals(4, CallAssembly.arguments(Fixtures.manifest(), generic, slots).size)
        assertArrayEquals(intArrayOf(1, 2, 3, 1), ExampleInputs.of(manifest, maxId = 3).getValue("history").intValues())
    }

    @Test
    fun stopwatchCountsOnlyTimedCalls() {
        var calls = 0
        val samples = Stopwatch.samples(2, 5) { calls += 1 }
        assertEquals(7, calls)
        assertEquals(5, samples.size)
        assertTrue(samples.all { it >= 0.0 })
    }
}

/** Recommendation glue: history padding, bodies, candidate chunks, top-N, typed recent items; ExampleInputs; LiteRT names; settings. */
package io.duet.core

import com.google.gson.Gson
import io.duet.core.Fixtures.goodBlob
import io.duet.core.Fixtures.refused
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Test

class RecommendationTest {
    private val manifest: Manifest = Fixtures.recommendation()
    private val slots = SlotBlob.decode(goodBlob(), manifest)

    @Test
    fun schemaFacts() {
        assertEquals(9, Recommendation.maxItemId(manifest))
        assertTrue(Recommendation.needsTimestamps(manifest))
        assertNull(Recommendation.maxItemId(Fixtures.manifest()))
        assertFalse(Recommendation.needsTimestamps(Fixtures.manifest()))
    }

    @Test
    fun schemaLimits() {
        assertEquals(3, Recommendation.maxContextItems(manifest))
        assertNull(Recommendation.maxContextItems(Fixtures.manifest()))
        assertEquals("benchmark", Recommendation.BENCHMARK_DEVICE_ID)
        assertEquals(1000, Recommendation.FALLBACK_MAX_ITEM_ID)
        assertEquals(60L, Recommendation.TIMESTAMP_SPACING_SECONDS)
    }

    @Test
    fun bodyHasSpacedTimestampsEndingNow() {
        val body = Recommendation.body(manifest, "phone", listOf(3, 5, 7), nowSeconds = 1000)
        assertEquals("{\"device_id\":\"phone\",\"items\":[3,5,7],\"timestamps\":[880,940,1000]}", body.toJson())
        assertEquals("{\"device_id\":\"phone\",\"items\":[3]}", Recommendation.body(Fixtures.manifest(), "phone", listOf(3), 1000).toJson())
    }

    @Test
    fun bodyKeepsTheLastMaxItems() {
        val body = Recommendation.body(manifest, "android-x", listOf(1, 2, 3, 4, 5), nowSeconds = 1000)
        assertEquals("{\"device_id\":\"android-x\",\"items\":[3,4,5],\"timestamps\":[880,940,1000]}", body.toJson())
        // no schema: every item
        assertEquals("{\"device_id\":\"d\",\"items\":[1,2,3,4,5]}",
            Recommendation.body(Fixtures.manifest(), "d", listOf(1, 2, 3, 4, 5), 1000).toJson())
    }

    @Test
    fun deviceIdIsPlatformAndInstallationInLowercase() {
        assertEquals("android-1b4e28ba-2fa1-11d2-883f-0016d3cca427",
            Recommendation.deviceId("Android", "1B4E28BA-2FA1-11D2-883F-0016D3CCA427"))
        assertEquals(128, Recommendation.deviceId("android", "x".repeat(300)).length)
    }

    @Test
    fun poolChunksAndCalls() {
        val noSchema = Fixtures.recommendationJson().also { it.remove("generate") }
        assertEquals((1..1000).toList(), Recommendation.pool(Manifest.parse(Gson().toJson(noSchema)), emptyList()))
        assertEquals(3, Recommendation.candidateCount(manifest))
        val chunks = Recommendation.chunks(manifest, listOf(1, 3, 5, 6, 7, 8, 9))
        assertEquals(listOf(listOf(1, 3, 5), listOf(6, 7, 8), listOf(9, 9, 9)), chunks.map { it.toList() })
        assertEquals(3, Recommendation.calls(manifest, 7))
        assertEquals(2, Recommendation.calls(manifest, 6))
    }

    @Test
    fun historyKeepsTheLastItemsLeftPadded() {
        assertArrayEquals(intArrayOf(0, 0, 3, 5), Recommendation.history(manifest, listOf(3, 5)).intValues())
        assertArrayEquals(intArrayOf(2, 3, 4, 5), Recommendation.history(manifest, listOf(1, 2, 3, 4, 5)).intValues())
        refused(Reason.MANIFEST, "no input 'history'") { Recommendation.history(Fixtures.manifest(), listOf(1)) }
    }

    @Test
    fun rankScoresThePoolInChunksAndKeepsTheBest() {
        val pool = Recommendation.pool(manifest, listOf(2, 4))
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
    fun recentItemsAsTypedKeepPositiveIdsAndListTheRest() {
        assertEquals(RecentItems(listOf(12, 845, 97, 7), emptyList()), Recommendation.parseRecent(" 12, 845\n97,,007 "))
        assertEquals(RecentItems(listOf(3), listOf("0", "-4", "abc", "+5", "99999999999", "1.5")),
            Recommendation.parseRecent("0, -4 abc 3 +5 99999999999 1.5"))
        assertEquals(RecentItems(emptyList(), emptyList()), Recommendation.parseRecent("  "))
    }

    @Test
    fun litertTakesInputsByTheTargetsNames() {
        val m = Fixtures.manifest()
        assertEquals(LiteRtBinding("serving_default", listOf("args_0", "args_1", "args_2", "args_3"), "output_0"),
            LiteRtBinding.of(m, m.target("tflite")))
        assertEquals("scores", LiteRtBinding.of(m, m.target("tflite").copy(outputName = null)).outputName)
        refused(Reason.MANIFEST, "the executorch target lists no input_names: LiteRT takes its inputs by name") {
            LiteRtBinding.of(m, m.target("executorch"))
        }
    }

    @Test
    fun anIntentsUrlNeverGetsTheBuiltInKey() {
        val built = ConnectionSettings("http://10.0.2.2:8000", "duet_built_in", "tflite")
        assertEquals(built, ConnectionSettings.resolve(null, null, null, built))
        assertEquals(ConnectionSettings("http://evil.example", "", "tflite"), ConnectionSettings.resolve(" http://evil.example ", null, null, built))
        assertEquals(ConnectionSettings("http://h:1", "k2", "executorch"), ConnectionSettings.resolve("http://h:1", "k2", "executorch", built))
        assertEquals(ConnectionSettings("http://10.0.2.2:8000", "k2", "tflite"), ConnectionSettings.resolve(null, "k2", null, built))
        assertEquals(built, ConnectionSettings.resolve("", null, null, built)) // an empty extra is no URL
    }

    @Test
    fun aChangedSettingMeansConnectingAgain() {
        val a = ConnectionSettings.typed(" http://h:1 ", "k ", "")
        assertEquals(ConnectionSettings("http://h:1", "k", "tflite"), a)
        assertFalse(a.needsReconnect(ConnectionSettings.typed("http://h:1", "k", "tflite")))
        assertTrue(a.needsReconnect(ConnectionSettings.typed("http://h:1", "other", "tflite")))
        assertTrue(a.needsReconnect(ConnectionSettings.typed("http://h:1", "k", "executorch")))
    }
}

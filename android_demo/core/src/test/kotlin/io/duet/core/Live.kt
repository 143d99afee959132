/** live.json of tests/live_service.py: the real service, the Python client's reference bytes and the faulty stand-in. */
package io.duet.core

import com.google.gson.JsonObject
import com.google.gson.JsonParser
import org.junit.Assert.fail
import org.junit.Assume.assumeTrue
import java.io.File
import java.nio.file.Files

object Live {
    private var loaded: JsonObject? = null
    private var where: File? = null

    private val required: Boolean get() = System.getenv("DUET_REQUIRE_LIVE") == "1"

    /**
     * live.json (call it from @BeforeClass). Without DUET_LIVE_DIR the calling class is skipped with a message
     * naming the make target, or fails when DUET_REQUIRE_LIVE=1. A live.json that is missing or incomplete fails.
     */
    fun json(): JsonObject {
        loaded?.let { return it }
        val path = System.getenv("DUET_LIVE_DIR")?.takeIf { it != "" }
        if (path == null) {
            val why = "DUET_LIVE_DIR is not set: the live tests need `make android-core-test` " +
                "(tests/live_service.py starts cli.py serve and tests/faulty_service.py)"
            if (required) fail("DUET_REQUIRE_LIVE=1 but $why")
            System.err.println("live tests skipped: $why")
            assumeTrue(why, false)
        }
        val dir = File(path!!)
        val file = File(dir, "live.json")
        if (!file.isFile) fail("DUET_LIVE_DIR=$dir has no live.json")
        val json = JsonParser.parseString(file.readText()).asJsonObject
        for (key in listOf("url", "api_key", "wrong_key", "target", "model_version", "devices", "base", "faulty")) {
            if (!json.has(key)) fail("$file has no '$key': rerun tests/live_service.py")
        }
        where = dir
        loaded = json
        return json
    }

    val url: String get() = json().get("url").asString
    val apiKey: String get() = json().get("api_key").asString
    val target: String get() = json().get("target").asString
    val modelVersion: String get() = json().get("model_version").asString

    fun service(timeoutMillis: Int = 30_000): ServiceClient = ServiceClient(url, apiKey, timeoutMillis)

    fun device(i: Int): JsonObject = json().getAsJsonArray("devices")[i].asJsonObject

    fun body(i: Int): RequestBody = RequestBody.fromJson(device(i).getAsJsonObject("body"))

    /** The Python client's decoded slots (flat float32 bytes) of a live.json entry. */
    fun flat(entry: JsonObject): ByteArray = File(where!!, entry.get("flat").asString).readBytes()

    /** A client of the faulty stand-in in [mode] (the mode must be one live.json lists). */
    fun faulty(mode: String, timeoutMillis: Int = 30_000): ServiceClient {
        val faulty = json().getAsJsonObject("faulty")
        val modes = faulty.getAsJsonArray("modes").map { it.asString }
        if (mode !in modes) fail("the faulty stand-in has no mode '$mode' (it has $modes)")
        return ServiceClient(faulty.get("url").asString + "/" + mode, apiKey, timeoutMillis)
    }

    fun tempDir(prefix: String): File = Files.createTempDirectory(prefix).toFile()

    /** The files under [dir] (recursively): a cache that refused a download holds none. */
    fun filesIn(dir: File): List<File> = dir.walk().filter { it.isFile }.toList()
}

/** ArtifactCache: the sha256-keyed download cache (short names, the manifest's byte count, digests, nothing left over). */
package io.duet.core

import io.duet.core.Fixtures.refused
import org.junit.After
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test
import java.io.ByteArrayInputStream
import java.io.File
import java.io.InputStream
import java.nio.file.Files

class ArtifactCacheTest {
    private val root: File = Files.createTempDirectory("duet-cache").toFile()
    private val cache = ArtifactCache(root)
    private val program = "the program bytes".toByteArray()

    private fun target(file: String, bytes: Long = program.size.toLong(), sha: String = Sha256.hex(program), servedAs: String = "file") =
        Target("tflite", file, bytes, sha, "litert", "none", servedAs, null, null, emptyList())

    private fun files(): List<File> = root.walk().filter { it.isFile }.toList()

    @After
    fun tearDown() {
        root.deleteRecursively()
    }

    @Test
    fun aOneCharacterFileNameIsStored() {
        val t = target("m")
        val file = cache.store(t, ByteArrayInputStream(program))
        assertEquals(File(File(root, t.sha256), "m"), file)
        assertArrayEquals(program, file.readBytes())
        assertEquals(listOf(file), files())
        assertEquals(file, cache.lookup(t))
    }

    @Test
    fun aZipIsStoredUnderItsZipName() {
        val t = target("model.mlpackage", servedAs = "zip")
        assertEquals("model.mlpackage.zip", cache.store(t, ByteArrayInputStream(program)).name)
    }

    @Test
    fun moreBytesThanTheManifestSaysStopTheDownload() {
        var served = 0L
        val endless = object : InputStream() {
            override fun read(): Int {
                served += 1
                return 1
            }

            override fun read(b: ByteArray, off: Int, len: Int): Int {
                served += len
                return len
            }
        }
        refused(Reason.MANIFEST, "more than the manifest's 17 bytes", "stopped and deleted") { cache.store(target("model.tflite"), endless) }
        assertTrue("read $served bytes", served <= 17 + (1 shl 16))
        assertEquals(emptyList<File>(), files())
        assertEquals(0, root.list()!!.size)
    }

    @Test
    fun aWrongDigestIsDeleted() {
        val other = "other program!!!!".toByteArray()
        refused(Reason.MANIFEST, "has sha256 ${Sha256.hex(other)}", "the download was deleted") {
            cache.store(target("model.tflite"), ByteArrayInputStream(other))
        }
        assertEquals(emptyList<File>(), files())
    }

    @Test
    fun aCutConnectionLeavesNothing() {
        val cut = object : InputStream() {
            private var left = 5
            override fun read(): Int {
                if (left == 0) throw java.io.IOException("connection reset")
                left -= 1
                return 0
            }
        }
        try {
            cache.store(target("model.tflite"), cut)
            fail("a cut download was stored")
        } catch (e: java.io.IOException) {
            assertEquals("connection reset", e.message)
        }
        assertEquals(emptyList<File>(), files())
    }

    @Test
    fun aStaleCachedFileIsNotServed() {
        val t = target("model.tflite")
        val path = cache.pathOf(t)
        path.parentFile.mkdirs()
        path.writeText("stale")
        assertNull(cache.lookup(t))
        cache.store(t, ByteArrayInputStream(program))
        assertEquals(path, cache.lookup(t))
    }
}

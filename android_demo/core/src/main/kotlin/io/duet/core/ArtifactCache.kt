/** The download cache: each program file at <cacheDir>/<sha256>/<file name>, written through a temp file and a rename. */
package io.duet.core

import java.io.File
import java.io.IOException
import java.io.InputStream
import java.io.UncheckedIOException
import java.nio.file.AtomicMoveNotSupportedException
import java.nio.file.Files
import java.nio.file.StandardCopyOption
import java.security.MessageDigest

/** A program file in the cache; [fetched] is false when it was already there with the right digest. */
data class CachedFile(val file: File, val fetched: Boolean)

/** Files keyed by their sha256 under [root]; a file is only ever visible complete and with the right digest. */
class ArtifactCache(val root: File) {

    /** Where [target]'s file lives (whether or not it is there yet). */
    fun pathOf(target: Target): File = File(File(root, target.sha256), target.cachedFileName)

    /** The cached file of [target] when it is there with the manifest's digest, else null. */
    fun lookup(target: Target): File? {
        val file = pathOf(target)
        return if (file.isFile && Sha256.hex(file) == target.sha256) file else null
    }

    /**
     * Write [input] to [target]'s place: into a temp file beside it, digest checked, then renamed. More bytes than
     * the manifest's `bytes` stop the download at once, and a digest that differs from the manifest's deletes it;
     * both are [Reason.MANIFEST] errors. Whatever fails (also an IOException of [input]: the connection was cut),
     * nothing is left in the cache: the temp file is deleted, and the sha256 directory too when it is empty.
     */
    fun store(target: Target, input: InputStream): File {
        val final = pathOf(target)
        val dir = final.parentFile
        if (!dir.isDirectory && !dir.mkdirs()) throw UncheckedIOException(IOException("cannot create the cache directory $dir"))
        var temp: File? = null
        try {
            // a fixed prefix: createTempFile wants at least 3 characters, and a file may be called "m"
            val partial = local { File.createTempFile("download-", ".partial", dir) }
            temp = partial
            val digest = MessageDigest.getInstance("SHA-256")
            var total = 0L
            local { partial.outputStream() }.use { out ->
                val chunk = ByteArray(1 shl 16)
                while (true) {
                    val n = input.read(chunk) // a network failure here stays an IOException: "no answer"
                    if (n < 0) break
                    total += n
                    if (total > target.bytes) {
                        refuse(Reason.MANIFEST, "${target.name}: the service sends more than the manifest's " +
                            "${target.bytes} bytes; the download was stopped and deleted: fetch the manifest again")
                    }
                    digest.update(chunk, 0, n)
                    local { out.write(chunk, 0, n) }
                }
            }
            val got = Sha256.toHex(digest.digest())
            if (got != target.sha256) {
                refuse(Reason.MANIFEST, "${target.name}: the downloaded file has sha256 $got, the manifest says " +
                    "${target.sha256}; the download was deleted")
            }
            local { move(partial, final) }
            return final
        } finally {
            if (temp != null && temp.exists()) temp.delete()
            if (!final.exists()) dir.delete() // only succeeds when empty
        }
    }

    /** Local disk failures are not the service's: they leave as UncheckedIOException, not as "no answer". */
    private fun <T> local(action: () -> T): T = try {
        action()
    } catch (e: IOException) {
        throw UncheckedIOException(e)
    }

    private fun move(from: File, to: File) {
        try {
            Files.move(from.toPath(), to.toPath(), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING)
        } catch (e: AtomicMoveNotSupportedException) {
            Files.move(from.toPath(), to.toPath(), StandardCopyOption.REPLACE_EXISTING)
        }
    }
}

/** sha256 digests as 64 lowercase hex digits, of bytes or of a file (streamed). */
package io.duet.core

import java.io.File
import java.security.MessageDigest

/** sha256 helpers. */
object Sha256 {
    /** Hex digest of [bytes]. */
    fun hex(bytes: ByteArray): String = toHex(MessageDigest.getInstance("SHA-256").digest(bytes))

    /** Hex digest of [file], read in 64 KiB chunks. */
    fun hex(file: File): String {
        val digest = MessageDigest.getInstance("SHA-256")
        file.inputStream().use { input ->
            val chunk = ByteArray(1 shl 16)
            while (true) {
                val n = input.read(chunk)
                if (n < 0) break
                digest.update(chunk, 0, n)
            }
        }
        return toHex(digest.digest())
    }

    /** Lowercase hex of [bytes]. */
    fun toHex(bytes: ByteArray): String {
        val out = StringBuilder(bytes.size * 2)
        for (b in bytes) {
            val v = b.toInt() and 0xff
            out.append(HEX[v ushr 4]).append(HEX[v and 0xf])
        }
        return out.toString()
    }

    private const val HEX = "0123456789abcdef"
}

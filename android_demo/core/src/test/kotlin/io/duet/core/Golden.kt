/** Where the golden files live: DUET_GOLDEN_DIR, else the duet.golden.dir property that test.sh and Gradle set. */
package io.duet.core

import java.io.File

object Golden {
    val dir: File by lazy {
        val path = System.getenv("DUET_GOLDEN_DIR")?.takeIf { it != "" } ?: System.getProperty("duet.golden.dir")
            ?: throw IllegalStateException("set DUET_GOLDEN_DIR (or -Dduet.golden.dir) to <repo>/tests/golden")
        val dir = File(path)
        check(File(dir, "expected.json").isFile) { "no expected.json in $dir: run `python tests/golden.py` first" }
        dir
    }

    fun file(name: String): File = File(dir, name)
}

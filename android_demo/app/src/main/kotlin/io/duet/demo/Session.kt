/** One connection to the service: manifest, the program downloaded and loaded, Base's slots; used by both screens. */
package io.duet.demo

import io.duet.core.ArtifactCache
import io.duet.core.DeviceSlots
import io.duet.core.Manifest
import io.duet.core.ServiceClient
import io.duet.core.Stopwatch
import io.duet.core.Target
import java.io.Closeable
import java.io.File

/** Everything a screen needs after connecting; [loadMs] is the program's load time, [fetched] whether it was downloaded. */
class Session private constructor(
    val service: ServiceClient,
    val manifest: Manifest,
    val target: Target,
    val program: Program,
    val slots: DeviceSlots,
    val programFile: File,
    val fetched: Boolean,
    val loadMs: Double
) : Closeable {
    override fun close() = program.close()

    companion object {
        /** Connect to [settings]' service and load its program (off the UI thread: network and disk). */
        fun open(settings: Settings, filesDir: File): Session {
            val service = ServiceClient(settings.serverUrl, settings.apiKey)
            val manifest = service.manifest()
            val target = manifest.target(settings.target)
            val download = service.download(manifest, target.name, ArtifactCache(File(filesDir, "programs")))
            val slots = DeviceSlots.load(service, manifest)
            val (program, loadMs) = Stopwatch.timed { Programs.load(manifest, target, download.file) }
            return Session(service, manifest, target, program, slots, download.file, download.fetched, loadMs)
        }
    }
}

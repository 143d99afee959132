/** One connection to the service: the core's DeviceClient set up (manifest, Base's slots, program file) and the program loaded. */
package io.duet.demo

import io.duet.core.ConnectionSettings
import io.duet.core.DeviceClient
import io.duet.core.DeviceSlots
import io.duet.core.Manifest
import io.duet.core.ServiceClient
import io.duet.core.Stopwatch
import io.duet.core.Target
import io.duet.core.TriggeredRefresh
import java.io.Closeable
import java.io.File

/** Everything a screen needs after connecting with [settings]; [loadMs] is the program's load time. */
class Session private constructor(
    val settings: ConnectionSettings,
    val device: DeviceClient,
    val program: Program,
    val loadMs: Double
) : Closeable {
    val manifest: Manifest get() = device.manifest
    val target: Target get() = device.target
    val slots: DeviceSlots get() = device.slots
    val programFile: File get() = device.program.file

    /** When this device asks for new slots: the core's trigger over its recent samples. */
    val refresher = TriggeredRefresh(Settings.trigger)

    /** Whether setup downloaded the program (false: it was in the cache). */
    val fetched: Boolean get() = device.program.fetched

    override fun close() = program.close()

    companion object {
        /** CPU threads of the demo's runtime (the benchmark's come from its intent). */
        const val THREADS = 1

        /** The cache of program files, keyed by sha256, under the app's files directory. */
        fun cacheDir(filesDir: File): File = File(filesDir, "programs")

        /** Connect to [settings]' service (DeviceClient.setup) and load its program (off the UI thread). */
        fun open(settings: ConnectionSettings, pinnedKey: String?, filesDir: File): Session {
            val service = ServiceClient(settings.serverUrl, settings.apiKey, pinnedKey = pinnedKey)
            val device = DeviceClient(service, settings.target, cacheDir(filesDir))
            val file = device.setup()
            val (program, loadMs) = Stopwatch.timed { Programs.load(device.manifest, device.target, file, THREADS) }
            return Session(settings, device, program, loadMs)
        }
    }
}

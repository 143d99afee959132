/** DeviceClient: one device's setup sequence (manifest, Base's slots, program download) and its slots; mirrors toolkit.client.DeviceClient. */
package io.duet.core

import java.io.File

/**
 * One device talking to the service through [service], running [targetName]'s program, with downloads in the cache
 * at [cacheDir]. [setup] does what every app does before loading its runtime; afterwards [manifest], [target],
 * [slots] and [program] are set. Not meant to be set up from two threads at once; [slots] itself is thread-safe.
 */
class DeviceClient(val service: ServiceClient, val targetName: String, val cacheDir: File) {
    @Volatile private var state: Ready? = null

    private class Ready(val manifest: Manifest, val target: Target, val slots: DeviceSlots, val program: CachedFile)

    /**
     * GET the manifest (checked), Base's slots (checked against it; they are the current slots of [slots]), then the
     * target's program file into the cache (sha256-checked, not fetched again when it is there). Returns the
     * program file; any failure throws its [DuetException] and leaves the client as it was.
     */
    fun setup(): File {
        val manifest = service.manifest()
        val target = manifest.target(targetName)
        val slots = DeviceSlots.load(service, manifest)
        val program = service.download(manifest, target.name, ArtifactCache(cacheDir))
        state = Ready(manifest, target, slots, program)
        return program.file
    }

    private fun ready(): Ready = state ?: throw IllegalStateException("call setup() first")

    /** True once [setup] succeeded. */
    val isSetUp: Boolean get() = state != null

    /** The manifest [setup] fetched. */
    val manifest: Manifest get() = ready().manifest

    /** The manifest's target [targetName]. */
    val target: Target get() = ready().target

    /** Base's slots and the current ones (the fallback rule). */
    val slots: DeviceSlots get() = ready().slots

    /** The program file in the cache, and whether [setup] downloaded it (false: it was already there). */
    val program: CachedFile get() = ready().program

    /** Ask for slots generated from [body] and install them; never throws a [DuetException] (see the outcome). */
    fun refresh(body: RequestBody, dtype: SlotDtype = SlotDtype.FLOAT32, binary: Boolean = false): RefreshOutcome =
        slots.refresh(service, body, dtype, binary)
}

/** DeviceSlots: the slots a device runs with, and the fallback rule (keep the last good ones, or Base's) on any refusal. */
package io.duet.core

/** Why the last install or refresh left the slots as they were. */
data class Refusal(val reason: Reason, val message: String, val status: Int, val code: String) {
    companion object {
        fun of(e: DuetException): Refusal = Refusal(e.reason, e.message ?: "", e.status, e.code)
    }
}

/** What a [DeviceSlots.refresh] did: whether new slots were installed, the slots now current, and why not. */
data class RefreshOutcome(
    val installed: Boolean,
    val current: SlotSet,
    /** Null when [installed]. */
    val refusal: Refusal?,
    /** POST /v1/generate until the answer was checked (or refused), in milliseconds. */
    val roundTripMs: Double
)

/**
 * Base's slots (checked like any blob) and the current slots: the last generated ones that passed every check, or
 * Base's while none has. On any error (service, blob, slot_shape, manifest) the current slots stay and [lastRefusal]
 * says why. Thread-safe.
 */
class DeviceSlots(val manifest: Manifest, val base: SlotSet) {
    @Volatile private var installed: SlotSet? = null
    @Volatile private var refusal: Refusal? = null

    init {
        if (base.specs != manifest.slots) refuse(Reason.SLOT_SHAPE, "Base's slots are not the manifest's slots")
    }

    /** The slots to run with now. */
    val current: SlotSet get() = installed ?: base

    /** True while no generated slots have been installed. */
    val usingBase: Boolean get() = installed == null

    /** Why the last install or refresh was refused; null after a success (or before any attempt). */
    val lastRefusal: Refusal? get() = refusal

    /** Check [answer] ([SlotAnswer.check]) and make its slots current; on a refusal record it and rethrow. */
    @Synchronized
    fun install(answer: SlotAnswer): SlotSet {
        val slots = try {
            answer.check(manifest)
        } catch (e: DuetException) {
            refusal = Refusal.of(e)
            throw e
        }
        installed = slots
        refusal = null
        return slots
    }

    /** Generate from [body] with [service] and [install] the answer; never throws a [DuetException]: see the outcome. */
    fun refresh(service: ServiceClient, body: RequestBody, dtype: SlotDtype = SlotDtype.FLOAT32, binary: Boolean = false): RefreshOutcome {
        val started = System.nanoTime()
        return try {
            install(service.generate(body, dtype, binary))
            RefreshOutcome(true, current, null, (System.nanoTime() - started) / 1e6)
        } catch (e: DuetException) {
            val why = Refusal.of(e)
            synchronized(this) { refusal = why }
            RefreshOutcome(false, current, why, (System.nanoTime() - started) / 1e6)
        }
    }

    companion object {
        /** Fetch Base's slots from [service] and check them; a failure here throws (there is nothing to fall back to). */
        fun load(service: ServiceClient, manifest: Manifest, dtype: SlotDtype = SlotDtype.FLOAT32): DeviceSlots =
            DeviceSlots(manifest, service.baseSlots(dtype).check(manifest))
    }
}

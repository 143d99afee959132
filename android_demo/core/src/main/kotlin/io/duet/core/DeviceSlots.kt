/** DeviceSlots: the slots a device runs with, and the fallback rule (keep the last good ones, or Base's) on any refusal. */
package io.duet.core

/** Why the last install or refresh left the slots as they were. */
data class Refusal(val reason: Reason, val message: String, val status: Int, val code: String) {
    companion object {
        fun of(e: DuetException): Refusal = Refusal(e.reason, e.message ?: "", e.status, e.code)
    }
}

/** What a [DeviceSlots.refresh] did: whether new slots were installed, the slots it left current, and why not. */
data class RefreshOutcome(
    val installed: Boolean,
    /** When [installed]: the slots this refresh installed; otherwise the slots current when it was refused. */
    val current: SlotSet,
    /** Null when [installed]. */
    val refusal: Refusal?,
    /** POST /v1/generate until the answer was checked (or refused), in milliseconds. */
    val roundTripMs: Double
)

/**
 * Base's slots (checked against the manifest here) and the current slots: the last generated ones that passed every
 * check, or Base's while none has. On any error (service, blob, slot_shape, manifest) the current slots stay and
 * [lastRefusal] says why. Every answer is checked with [pinnedKey] ([SlotAnswer.check]). Thread-safe: checks run
 * outside the lock; a refusal is only recorded when no install succeeded since that attempt began, so a slow failure
 * never hides a later success.
 */
class DeviceSlots(val manifest: Manifest, val base: SlotSet, val pinnedKey: String? = null) {
    private val lock = Any()
    private var installed: SlotSet? = null
    private var refusal: Refusal? = null
    private var successes = 0L

    init {
        if (base.specs != manifest.slots) {
            refuse(Reason.SLOT_SHAPE, "Base's slots ${base.specs.map { it.name + it.shape }} are not the manifest's " +
                "slots ${manifest.slots.map { it.name + it.shape }}")
        }
    }

    /** The slots to run with now. */
    val current: SlotSet get() = synchronized(lock) { installed ?: base }

    /** True while no generated slots have been installed. */
    val usingBase: Boolean get() = synchronized(lock) { installed == null }

    /** Why the last install or refresh was refused; null after a success (or before any attempt). */
    val lastRefusal: Refusal? get() = synchronized(lock) { refusal }

    /** Check [answer] ([SlotAnswer.check]) and make its slots current; on a refusal record it and rethrow. */
    fun install(answer: SlotAnswer): SlotSet = install(answer, ticket())

    /**
     * Generate from [body] with [service] and install the answer. Never throws a [DuetException]: the outcome says
     * whether new slots were installed (and which) or why not.
     */
    fun refresh(service: ServiceClient, body: RequestBody, dtype: SlotDtype = SlotDtype.FLOAT32, binary: Boolean = false): RefreshOutcome {
        val ticket = ticket()
        val started = System.nanoTime()
        return try {
            val slots = install(service.generate(body, dtype, binary), ticket)
            RefreshOutcome(true, slots, null, (System.nanoTime() - started) / 1e6)
        } catch (e: DuetException) {
            val (why, kept) = refused(e, ticket)
            RefreshOutcome(false, kept, why, (System.nanoTime() - started) / 1e6)
        }
    }

    /** The number of successful installs so far: an attempt's ticket. */
    internal fun ticket(): Long = synchronized(lock) { successes }

    internal fun install(answer: SlotAnswer, ticket: Long): SlotSet {
        val slots = try {
            answer.check(manifest, pinnedKey)
        } catch (e: DuetException) {
            refused(e, ticket)
            throw e
        }
        synchronized(lock) {
            installed = slots
            refusal = null
            successes += 1
        }
        return slots
    }

    /** Record [e] unless an install succeeded after the attempt of [ticket] began; the refusal and the slots kept. */
    internal fun refused(e: DuetException, ticket: Long): Pair<Refusal, SlotSet> {
        val why = Refusal.of(e)
        synchronized(lock) {
            if (successes == ticket) refusal = why
            return Pair(why, installed ?: base)
        }
    }

    companion object {
        /**
         * Fetch Base's slots from [service] and check them (with the service's pinned key); a failure here throws
         * (there is nothing to fall back to).
         */
        fun load(service: ServiceClient, manifest: Manifest, dtype: SlotDtype = SlotDtype.FLOAT32): DeviceSlots =
            DeviceSlots(manifest, service.baseSlots(dtype).check(manifest, service.pinnedKey), service.pinnedKey)
    }
}

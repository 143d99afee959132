/** The demo screen's state, kept across rotation: the session (connected once per settings), one worker thread, the report text. */
package io.duet.demo

import android.app.Application
import android.content.Context
import androidx.lifecycle.AndroidViewModel
import androidx.lifecycle.LiveData
import androidx.lifecycle.MutableLiveData
import io.duet.core.ConnectionSettings
import io.duet.core.DuetException
import io.duet.core.Recommendation
import io.duet.core.Scored
import io.duet.core.SlotSet
import io.duet.core.Stopwatch
import java.util.UUID
import java.util.concurrent.Executors

/** Owns the session and its worker: a rotation recreates the activity, not this, so nothing connects or runs twice. */
class DemoViewModel(application: Application) : AndroidViewModel(application) {
    private val worker = Executors.newSingleThreadExecutor()
    private var session: Session? = null // touched on the worker thread only
    private val text = MutableLiveData<String>()

    /** What the screen shows under its fields. */
    val report: LiveData<String> get() = text

    /** Connect (again when the core says the settings changed), ask for slots when the core's trigger fires, then rank
     * with Base's and with the current slots. */
    fun rank(settings: ConnectionSettings, recentText: String) {
        text.value = "working..."
        worker.execute {
            text.postValue(try {
                report(settings, recentText)
            } catch (e: DuetException) {
                "refused (${e.reason.id}${if (e.status != 0) ", HTTP ${e.status}" else ""}): ${e.message}"
            } catch (e: Exception) {
                "failed: $e"
            })
        }
    }

    override fun onCleared() {
        worker.execute { session?.close() }
        worker.shutdown()
    }

    private fun report(settings: ConnectionSettings, recentText: String): String {
        val recent = Recommendation.parseRecent(recentText)
        if (recent.ids.isEmpty()) return "enter at least one recent item id (whole numbers from 1)"
        val current = session
        val s = if (current != null && !current.settings.needsReconnect(settings)) current else {
            current?.close()
            session = null
            Session.open(settings, Settings.pinnedKey, getApplication<Application>().filesDir).also { session = it }
        }
        val items = recent.ids
        val pool = Recommendation.pool(s.manifest, items)
        val (baseTop, baseMs) = Stopwatch.timed { top(s, items, pool, s.slots.base) }
        val now = System.currentTimeMillis() / 1000
        val body = Recommendation.body(s.manifest, deviceId(), items, now)
        val asked = s.refresher.onSample(Recommendation.triggerWindow(s.manifest, items, now)) { s.device.refresh(body) }
        val calls = Recommendation.calls(s.manifest, pool.size)
        return buildString {
            if (recent.ignored.isNotEmpty()) append("ignored (not item ids): ${recent.ignored.joinToString(" ")}\n")
            append("model ${s.manifest.modelVersion}, ${s.target.name} (${s.program.backend}), ${s.target.quantization}\n")
            append("program ${s.programFile.name}: ${if (s.fetched) "downloaded" else "from the cache"}, loaded in ${ms(s.loadMs)}\n\n")
            append("Top $TOP_N with Base's slots (${pool.size} candidates, ${ms(baseMs)}):\n").append(list(baseTop)).append('\n')
            val trigger = asked.decision
            append("request trigger: score ${"%.4g".format(trigger.score)}, threshold ${s.refresher.config.threshold}: ")
            append(if (trigger.request) "asked for new slots\n" else "kept the current slots\n")
            val refresh = asked.refresh
            if (refresh == null) {
                val (top, ms) = Stopwatch.timed { top(s, items, pool, s.slots.current) }
                append("Top $TOP_N with the current slots (${ms(ms)}):\n").append(list(top)).append('\n')
            } else if (refresh.installed) {
                val (genTop, genMs) = Stopwatch.timed { top(s, items, pool, refresh.current) }
                append("Top $TOP_N with generated slots (${ms(genMs)}; generate round trip ${ms(refresh.roundTripMs)}):\n")
                append(list(genTop)).append('\n')
            } else {
                append("Generated slots refused, kept ${if (s.slots.usingBase) "Base's" else "the last good"} slots: ")
                append("${refresh.refusal?.reason?.id}: ${refresh.refusal?.message}\n")
            }
            append("one program call (${Recommendation.candidateCount(s.manifest)} candidates): ${ms(baseMs / calls)}\n")
        }
    }

    /** The core's device id rule over this installation's id (a random UUID kept in the app's preferences). */
    private fun deviceId(): String {
        val prefs = getApplication<Application>().getSharedPreferences("duet", Context.MODE_PRIVATE)
        val id = prefs.getString("installation_id", null) ?: UUID.randomUUID().toString().also {
            prefs.edit().putString("installation_id", it).apply()
        }
        return Recommendation.deviceId("android", id)
    }

    private fun top(s: Session, items: List<Int>, pool: List<Int>, slots: SlotSet): List<Scored> =
        Recommendation.rank(s.manifest, items, pool, slots, TOP_N, s.target) { args -> s.program.run(args) }

    private fun list(top: List<Scored>): String = top.joinToString("\n") { "  item ${it.item}  score ${"%.3f".format(it.score)}" }

    private fun ms(value: Double): String = "%.2f ms".format(value)

    companion object {
        const val TOP_N = 10
    }
}

/** The demo screen: server and key, the device's recent items, top-N with Base's slots and with generated slots, timings. */
package io.duet.demo

import android.content.Context
import android.os.Bundle
import android.text.InputType
import android.widget.Button
import android.widget.EditText
import android.widget.LinearLayout
import android.widget.ScrollView
import android.widget.TextView
import androidx.activity.ComponentActivity
import io.duet.core.DuetException
import io.duet.core.Recommendation
import io.duet.core.Scored
import io.duet.core.SlotSet
import io.duet.core.Stopwatch
import java.util.concurrent.Executors

class MainActivity : ComponentActivity() {
    private val worker = Executors.newSingleThreadExecutor()
    private var session: Session? = null // touched on the worker thread only
    private lateinit var url: EditText
    private lateinit var key: EditText
    private lateinit var target: EditText
    private lateinit var recent: EditText
    private lateinit var output: TextView

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        val settings = Settings.from(intent)
        val column = LinearLayout(this).apply { orientation = LinearLayout.VERTICAL; setPadding(32, 32, 32, 32) }
        url = field(column, "Server URL", settings.serverUrl)
        key = field(column, "API key", settings.apiKey).apply {
            inputType = InputType.TYPE_CLASS_TEXT or InputType.TYPE_TEXT_VARIATION_PASSWORD
        }
        target = field(column, "Target (executorch or tflite)", settings.target)
        recent = field(column, "Recent items (ids, oldest first)", "1, 2, 3, 4, 5")
        column.addView(Button(this).apply { text = "Rank"; setOnClickListener { rank() } })
        output = TextView(this).apply { setTextIsSelectable(true); typeface = android.graphics.Typeface.MONOSPACE }
        column.addView(output)
        setContentView(ScrollView(this).apply { addView(column) })
    }

    override fun onDestroy() {
        worker.execute { session?.close() }
        worker.shutdown()
        super.onDestroy()
    }

    private fun field(parent: LinearLayout, label: String, value: String): EditText {
        parent.addView(TextView(this).apply { text = label })
        return EditText(this).apply { setText(value); setSingleLine(); parent.addView(this) }
    }

    /** Connect (again whenever a setting changed), then rank with Base's slots and with slots generated from the recent items. */
    private fun rank() {
        val settings = Settings(url.text.toString().trim(), key.text.toString().trim(), target.text.toString().trim())
        val items = recent.text.split(',', ' ').mapNotNull { it.trim().toIntOrNull() }
        output.text = "working..."
        worker.execute {
            val report = try {
                report(settings, items)
            } catch (e: DuetException) {
                "refused (${e.reason.id}${if (e.status != 0) ", HTTP ${e.status}" else ""}): ${e.message}"
            } catch (e: Exception) {
                "failed: $e"
            }
            runOnUiThread { output.text = report }
        }
    }

    private fun report(settings: Settings, items: List<Int>): String {
        require(items.isNotEmpty()) { "enter at least one recent item id" }
        val current = session
        val s = if (current != null && current.settings == settings) current else { // URL, key and target
            current?.close()
            session = null
            Session.open(settings, filesDir).also { session = it }
        }
        val pool = Recommendation.pool(s.manifest, items)
        val (baseTop, baseMs) = Stopwatch.timed { top(s, items, pool, s.slots.base) }
        val body = Recommendation.body(s.manifest, deviceId(), items, System.currentTimeMillis() / 1000)
        val refresh = s.device.refresh(body)
        val calls = Recommendation.calls(s.manifest, pool.size)
        return buildString {
            append("model ${s.manifest.modelVersion}, ${s.target.name} (${s.program.backend}), ${s.target.quantization}\n")
            append("program ${s.programFile.name}: ${if (s.fetched) "downloaded" else "from the cache"}, loaded in ${ms(s.loadMs)}\n\n")
            append("Top ${TOP_N} with Base's slots (${pool.size} candidates, ${ms(baseMs)}):\n").append(list(baseTop)).append('\n')
            if (refresh.installed) {
                val (genTop, genMs) = Stopwatch.timed { top(s, items, pool, refresh.current) }
                append("Top ${TOP_N} with generated slots (${ms(genMs)}; generate round trip ${ms(refresh.roundTripMs)}):\n")
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
        val prefs = getSharedPreferences("duet", Context.MODE_PRIVATE)
        val id = prefs.getString("installation_id", null) ?: java.util.UUID.randomUUID().toString().also {
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

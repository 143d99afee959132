/** The demo screen: server and key, the device's recent items, and the DemoViewModel's report (top-N with Base's and generated slots). */
package io.duet.demo

import android.graphics.Typeface
import android.os.Bundle
import android.text.InputType
import android.widget.Button
import android.widget.EditText
import android.widget.LinearLayout
import android.widget.ScrollView
import android.widget.TextView
import androidx.activity.ComponentActivity
import androidx.activity.viewModels
import io.duet.core.ConnectionSettings

class MainActivity : ComponentActivity() {
    private val model: DemoViewModel by viewModels()

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        val settings = Settings.from(intent)
        val column = LinearLayout(this).apply { orientation = LinearLayout.VERTICAL; setPadding(32, 32, 32, 32) }
        val url = field(column, "Server URL", settings.serverUrl)
        val key = field(column, "API key", settings.apiKey).apply {
            inputType = InputType.TYPE_CLASS_TEXT or InputType.TYPE_TEXT_VARIATION_PASSWORD
        }
        val target = field(column, "Target (executorch or tflite)", settings.target)
        val recent = field(column, "Recent items (ids, oldest first)", "1, 2, 3, 4, 5")
        column.addView(Button(this).apply {
            text = "Rank"
            setOnClickListener {
                model.rank(ConnectionSettings.typed(url.text.toString(), key.text.toString(), target.text.toString()),
                    recent.text.toString())
            }
        })
        val output = TextView(this).apply { setTextIsSelectable(true); typeface = Typeface.MONOSPACE }
        column.addView(output)
        setContentView(ScrollView(this).apply { addView(column) })
        model.report.observe(this) { output.text = it }
    }

    private fun field(parent: LinearLayout, label: String, value: String): EditText {
        parent.addView(TextView(this).apply { text = label })
        return EditText(this).apply { setText(value); setSingleLine(); parent.addView(this) }
    }
}

/**
 * The benchmark (debug builds only: src/debug/AndroidManifest.xml), started by adb like ExecuTorch's minibench; the
 * core's Benchmarks.run measures, this writes ${filesDir}/benchmark_results.json and finishes:
 *   adb shell am start -S -W -n io.duet.demo/.BenchmarkActivity --es model_dir /data/local/tmp/duet \
 *       --ei num_iter 50 --ei num_warm_up_iter 10 --ei num_threads 1 [--es target tflite] [--es server_url URL --es api_key KEY]
 */
package io.duet.demo

import android.app.Application
import android.os.Bundle
import android.util.Log
import android.widget.TextView
import androidx.activity.ComponentActivity
import androidx.activity.viewModels
import androidx.lifecycle.AndroidViewModel
import androidx.lifecycle.LiveData
import androidx.lifecycle.MutableLiveData
import io.duet.core.BenchmarkRecords
import io.duet.core.Benchmarks
import io.duet.core.MemoryMetrics
import java.io.File
import java.io.IOException
import java.util.concurrent.Executors

class BenchmarkActivity : ComponentActivity() {
    private val model: BenchmarkViewModel by viewModels()

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        val status = TextView(this).apply { text = "benchmarking..."; setPadding(32, 32, 32, 32) }
        setContentView(status)
        val extras = intent.extras
        @Suppress("DEPRECATION") // Bundle.get(String): the typed get(String, Class) arrives at API 33
        model.start(extras?.keySet()?.associateWith { extras.get(it) } ?: emptyMap())
        model.summary.observe(this) { text ->
            status.text = text
            finish() // the results file is written: minibench finishes here too
        }
    }

    companion object {
        const val TAG = "DuetBenchmark"
        const val RESULTS = "benchmark_results.json"
    }
}

/** Runs the benchmark once per activity task (a rotation does not start it again) on its own worker thread. */
class BenchmarkViewModel(application: Application) : AndroidViewModel(application) {
    private val worker = Executors.newSingleThreadExecutor()
    private var started = false
    private val done = MutableLiveData<String>()

    /** Set once the results file is written (or could not be): what the screen shows before finishing. */
    val summary: LiveData<String> get() = done

    /** Start the run with the intent's [extras], unless it already started. */
    fun start(extras: Map<String, Any?>) {
        if (started) return
        started = true
        val app = getApplication<Application>()
        worker.execute {
            val records = Benchmarks.run(extras, Session.cacheDir(app.filesDir), Programs.SUPPORTED, DeviceFacts.info(app),
                { source, threads -> Programs.load(source.manifest, source.target, source.programFile, threads) },
                { DeviceFacts.pssMb() }, MemoryMetrics.PSS, Settings.pinnedKey)
            val out = File(app.filesDir, BenchmarkActivity.RESULTS)
            val text = try {
                BenchmarkRecords.write(records, out)
                "wrote ${records.size} records to $out\n" + records.joinToString("\n") {
                    if (it.error != "") "${it.metric}: ${it.error}" else "${it.metric}: ${"%.3f".format(it.actualValue)}"
                }
            } catch (e: IOException) {
                "cannot write $out: ${e.message}"
            }
            Log.i(BenchmarkActivity.TAG, text)
            done.postValue(text)
        }
    }

    override fun onCleared() {
        worker.shutdown()
    }
}

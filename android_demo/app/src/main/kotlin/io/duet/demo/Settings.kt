/** Connection settings: intent extras first (server_url, api_key, target), then the BuildConfig defaults. */
package io.duet.demo

import android.content.Intent

/** Where the service is and which program to run. */
data class Settings(val serverUrl: String, val apiKey: String, val target: String) {
    companion object {
        fun from(intent: Intent?): Settings = Settings(
            intent?.getStringExtra("server_url") ?: BuildConfig.DUET_SERVER_URL,
            intent?.getStringExtra("api_key") ?: BuildConfig.DUET_API_KEY,
            intent?.getStringExtra("target") ?: BuildConfig.DUET_TARGET.ifEmpty { "tflite" })
    }
}

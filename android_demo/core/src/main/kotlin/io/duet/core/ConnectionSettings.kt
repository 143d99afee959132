/** The demo screen's connection (server, key, target): which settings an intent may bring, and when to connect again. */
package io.duet.core

/** Where the demo connects, with which API key, and which program target it runs. */
data class ConnectionSettings(val serverUrl: String, val apiKey: String, val target: String) {
    /** Whether a session opened with these settings must be opened again for [wanted]: any field changed. */
    fun needsReconnect(wanted: ConnectionSettings): Boolean = this != wanted

    companion object {
        /** The target when none is given. */
        const val DEFAULT_TARGET = "tflite"

        /** The settings typed on the screen: trimmed; an empty target is [DEFAULT_TARGET]. */
        fun typed(serverUrl: String, apiKey: String, target: String): ConnectionSettings =
            ConnectionSettings(serverUrl.trim(), apiKey.trim(), target.trim().ifEmpty { DEFAULT_TARGET })

        /**
         * The settings a screen starts with: the intent's extras over [defaults] (the build's). A server URL that came
         * from the intent never gets [defaults]' key: the key is the intent's, or none. Any app can send an intent,
         * and would otherwise receive the built-in key at a server of its choosing.
         */
        fun resolve(intentUrl: String?, intentKey: String?, intentTarget: String?, defaults: ConnectionSettings): ConnectionSettings {
            val url = intentUrl?.trim()?.takeIf { it.isNotEmpty() }
            val key = if (url != null) intentKey ?: "" else intentKey ?: defaults.apiKey
            return typed(url ?: defaults.serverUrl, key, intentTarget ?: defaults.target)
        }
    }
}

/** The build's connection defaults (BuildConfig), and the intent's extras over them by the core's rule (ConnectionSettings.resolve). */
package io.duet.demo

import android.content.Intent
import io.duet.core.ConnectionSettings
import io.duet.core.TriggerConfig
import io.duet.core.TriggeredRefresh

object Settings {
    /** What the build bakes in: a release build has no API key (app/build.gradle.kts). */
    val built: ConnectionSettings
        get() = ConnectionSettings.typed(BuildConfig.DUET_SERVER_URL, BuildConfig.DUET_API_KEY, BuildConfig.DUET_TARGET)

    /** The signing key the app is pinned to (duet.signingKey), or null: then the manifest's own key is used. */
    val pinnedKey: String? get() = BuildConfig.DUET_SIGNING_KEY.takeIf { it.isNotEmpty() }

    /** When the device asks for new slots (duet.trigger, a run's trigger.json), else the core's default. */
    val trigger: TriggerConfig get() = TriggerConfig.parse(BuildConfig.DUET_TRIGGER.ifEmpty { TriggeredRefresh.DEFAULT_JSON })

    /** The screen's first settings: [intent]'s extras over [built]; a server_url extra never gets the built-in key. */
    fun from(intent: Intent?): ConnectionSettings = ConnectionSettings.resolve(intent?.getStringExtra("server_url"),
        intent?.getStringExtra("api_key"), intent?.getStringExtra("target"), built)
}

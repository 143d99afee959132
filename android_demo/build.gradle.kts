// Plugins are declared once here (versions from gradle/libs.versions.toml) and applied in :core and :app.
plugins {
    alias(libs.plugins.android.application) apply false
    alias(libs.plugins.kotlin.android) apply false
    alias(libs.plugins.kotlin.jvm) apply false
}

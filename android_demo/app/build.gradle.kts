// :app: the demo screens (MainActivity; BenchmarkActivity in debug builds only) and the two runtimes; every decision lives in :core.
import org.jetbrains.kotlin.gradle.dsl.JvmTarget

plugins {
    alias(libs.plugins.android.application)
    alias(libs.plugins.kotlin.android)
}

fun setting(name: String): String = (project.findProperty(name) as String?) ?: ""

fun quoted(value: String): String = "\"" + value.replace("\\", "\\\\").replace("\"", "\\\"") + "\""

android {
    namespace = "io.duet.demo"
    compileSdk = 35

    defaultConfig {
        applicationId = "io.duet.demo"
        minSdk = 26 // java.nio.file (the core's download cache); ExecuTorch and LiteRT need 23
        targetSdk = 35
        versionCode = 1
        versionName = "0.1"
        buildConfigField("String", "DUET_SERVER_URL", quoted(setting("duet.serverUrl")))
        buildConfigField("String", "DUET_TARGET", quoted(setting("duet.target")))
        // The public key slot blobs must be signed with (a pin: a manifest naming another key is refused); not a secret.
        buildConfigField("String", "DUET_SIGNING_KEY", quoted(setting("duet.signingKey")))
        // When to ask for new slots: a run's trigger.json (`cli.py evaluate --refresh trigger`); empty: the core's default.
        buildConfigField("String", "DUET_TRIGGER", quoted(setting("duet.trigger")))
        ndk {
            abiFilters += listOf("arm64-v8a", "x86_64")
        }
    }

    buildTypes {
        debug {
            // A development key for `cli.py serve` on a laptop: debug builds only.
            buildConfigField("String", "DUET_API_KEY", quoted(setting("duet.apiKey")))
        }
        release {
            isMinifyEnabled = false
            // No secret in a release build: the user types the key on the screen.
            buildConfigField("String", "DUET_API_KEY", "\"\"")
        }
    }

    buildFeatures {
        buildConfig = true
    }

    // Bytecode for Java 17 from whatever JDK runs Gradle (Android Studio's bundled JDK 21 included): no toolchain.
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    // No pickFirst rule: libc++_shared.so comes only from fbjni (ExecuTorch's dependency); ExecuTorch's and
    // LiteRT's AARs do not ship one. Should a future AAR ship its own, the build stops with "More than one file".
}

kotlin {
    compilerOptions {
        jvmTarget.set(JvmTarget.JVM_17)
    }
}

dependencies {
    implementation(project(":core"))
    implementation(libs.executorch.android)
    implementation(libs.litert)
    implementation(libs.androidx.activity)
    implementation(libs.androidx.lifecycle.viewmodel)
    implementation(libs.androidx.lifecycle.livedata)
    implementation(libs.gson)
}

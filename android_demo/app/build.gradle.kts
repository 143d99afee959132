// :app: the demo screens (MainActivity, BenchmarkActivity) and the two runtimes; every decision lives in :core.
plugins {
    alias(libs.plugins.android.application)
    alias(libs.plugins.kotlin.android)
}

fun setting(name: String): String = (project.findProperty(name) as String?) ?: ""

android {
    namespace = "io.duet.demo"
    compileSdk = 35

    defaultConfig {
        applicationId = "io.duet.demo"
        minSdk = 26 // java.nio.file (the core's download cache); ExecuTorch and LiteRT need 23
        targetSdk = 35
        versionCode = 1
        versionName = "0.1"
        buildConfigField("String", "DUET_SERVER_URL", "\"${setting("duet.serverUrl")}\"")
        buildConfigField("String", "DUET_API_KEY", "\"${setting("duet.apiKey")}\"")
        buildConfigField("String", "DUET_TARGET", "\"${setting("duet.target")}\"")
        ndk {
            abiFilters += listOf("arm64-v8a", "x86_64")
        }
    }

    buildTypes {
        release {
            isMinifyEnabled = false
        }
    }

    buildFeatures {
        buildConfig = true
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    packaging {
        jniLibs {
            // ExecuTorch and LiteRT both ship libc++_shared.so
            pickFirsts += "**/libc++_shared.so"
        }
    }
}

kotlin {
    jvmToolchain(17)
}

dependencies {
    implementation(project(":core"))
    implementation(libs.executorch.android)
    implementation(libs.litert)
    implementation(libs.androidx.activity)
    implementation(libs.gson)
}

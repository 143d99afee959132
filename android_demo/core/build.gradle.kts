// :core: the app's decisions in pure Kotlin on the JVM (no android.*). Also built without Gradle by core/test.sh.
import org.jetbrains.kotlin.gradle.dsl.JvmTarget

plugins {
    kotlin("jvm")
}

// Bytecode for Java 17, compiled by whatever JDK runs Gradle (17, or Android Studio's bundled 21): no toolchain to resolve.
java {
    sourceCompatibility = JavaVersion.VERSION_17
    targetCompatibility = JavaVersion.VERSION_17
}

kotlin {
    compilerOptions {
        jvmTarget.set(JvmTarget.JVM_17)
    }
}

dependencies {
    implementation(libs.gson)
    api(libs.bouncycastle) // Ed25519 where the platform has none (BouncyCastleEd25519)
    testImplementation(libs.junit)
}

tasks.test {
    // GoldenTest reads tests/golden (DUET_GOLDEN_DIR wins when set); LiveServiceTest reads DUET_LIVE_DIR.
    systemProperty("duet.golden.dir", rootProject.file("../tests/golden").absolutePath)
}

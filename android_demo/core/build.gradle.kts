// :core: the app's decisions in pure Kotlin on the JVM (no android.*). Also built without Gradle by core/test.sh.
plugins {
    kotlin("jvm")
}

kotlin {
    jvmToolchain(17)
}

dependencies {
    implementation(libs.gson)
    testImplementation(libs.junit)
}

tasks.test {
    // GoldenTest reads tests/golden (DUET_GOLDEN_DIR wins when set); LiveServiceTest reads DUET_LIVE_DIR.
    systemProperty("duet.golden.dir", rootProject.file("../tests/golden").absolutePath)
}

// The DUET Android demo: :core (pure Kotlin on the JVM: manifest, slot blobs, service client, fallback, benchmark
// records; also compiled and tested without Gradle by core/test.sh) and :app (the Android screens and runtimes).
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}

dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}

rootProject.name = "duet-android-demo"
include(":core", ":app")

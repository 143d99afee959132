package io.duet.demo;
/** What AGP generates from app/build.gradle.kts (buildConfigField). */
public final class BuildConfig {
    public static final String DUET_SERVER_URL = "";
    public static final String DUET_API_KEY = "";
    public static final String DUET_TARGET = "";
    public static final String DUET_SIGNING_KEY = "";
    public static final String DUET_TRIGGER = "";
}

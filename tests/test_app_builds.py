"""The demo apps' build settings that decide what a release build holds, checked as files (no Gradle, Android SDK or
Xcode here): the benchmark activity only in debug builds, no API key in a release build, plain http to local hosts in
iOS Debug builds only, the runtime versions pinned once and equal to the exporter's."""

from __future__ import annotations

import plistlib
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ANDROID, IOS = ROOT / "android_demo", ROOT / "ios_demo"
ANDROID_NS = "{http://schemas.android.com/apk/res/android}"


def activities(manifest: Path) -> dict[str, str]:
    """{activity name: android:exported} of an AndroidManifest.xml."""
    tree = ET.parse(manifest)
    return {a.get(f"{ANDROID_NS}name"): a.get(f"{ANDROID_NS}exported") for a in tree.iter("activity")}


def test_the_benchmark_activity_is_declared_in_debug_builds_only():
    main, debug = activities(ANDROID / "app/src/main/AndroidManifest.xml"), activities(
        ANDROID / "app/src/debug/AndroidManifest.xml")
    assert ".BenchmarkActivity" not in main and main == {".MainActivity": "true"}
    assert debug == {".BenchmarkActivity": "true"}
    assert not (ANDROID / "app/src/main/kotlin/io/duet/demo/BenchmarkActivity.kt").exists()
    assert (ANDROID / "app/src/debug/kotlin/io/duet/demo/BenchmarkActivity.kt").exists()


def test_a_release_build_bakes_in_no_api_key():
    gradle = (ANDROID / "app/build.gradle.kts").read_text()
    block = lambda name: re.search(rf"\n        {name} \{{\n(.*?)\n        \}}", gradle, re.S).group(1)  # noqa: E731
    assert 'buildConfigField("String", "DUET_API_KEY", "\\"\\"")' in block("release")
    assert 'setting("duet.apiKey")' in block("debug")
    default_config = re.search(r"defaultConfig \{(.*?)\n    \}", gradle, re.S).group(1)
    assert "DUET_API_KEY" not in default_config
    assert "pickFirsts +=" not in gradle and "jvmToolchain(" not in gradle
    assert "jvmToolchain(" not in (ANDROID / "core/build.gradle.kts").read_text()


def test_the_runtimes_are_pinned_once_and_executorch_is_the_exporters():
    catalog = (ANDROID / "gradle/libs.versions.toml").read_text()
    pinned = dict(re.findall(r'^([a-z-]+) = "([^"]+)"', catalog, re.M))
    requirements = dict(re.findall(r"^([a-z-]+)==(\S+)", (ROOT / "requirements.txt").read_text(), re.M))
    assert pinned["executorch"] == requirements["executorch"]
    assert pinned["litert"] == "2.1.0" and pinned["bouncycastle"] == "1.72"
    gradle_files = [p for p in ANDROID.rglob("*.kts")]
    assert not any(re.search(r'"(org\.pytorch|com\.google\.ai\.edge\.litert|org\.bouncycastle):', p.read_text())
                   for p in gradle_files)  # versions only in the catalog
    wrapper = (ANDROID / "gradle/wrapper/gradle-wrapper.properties").read_text()
    assert "gradle-8.9-bin.zip" in wrapper and (ANDROID / "gradle/wrapper/gradle-wrapper.jar").stat().st_size > 10_000


def preprocessed_plist(*defines: str) -> dict:
    """App/Info.plist through the C preprocessor as Xcode's INFOPLIST_PREPROCESS runs it (-traditional)."""
    done = subprocess.run(["cpp", "-P", "-traditional-cpp", "-nostdinc", "-undef", *defines,
                           str(IOS / "App/Info.plist")], capture_output=True, text=True, check=True)
    assert done.stderr == ""
    return plistlib.loads(done.stdout.encode())


@pytest.mark.skipif(shutil.which("cpp") is None, reason="no C preprocessor (Debian: cpp)")
def test_ios_allows_plain_http_to_local_hosts_in_debug_builds_only():
    project = (IOS / "project.yml").read_text()
    assert "INFOPLIST_PREPROCESSOR_DEFINITIONS: DUET_LOCAL_NETWORKING=1" in project.split("Debug:")[1]
    assert "NSAllowsLocalNetworking" not in project and "INFOPLIST_PREPROCESS: YES" in project
    release, debug = preprocessed_plist(), preprocessed_plist("-DDUET_LOCAL_NETWORKING=1")
    assert "NSAppTransportSecurity" not in release
    assert debug["NSAppTransportSecurity"] == {"NSAllowsLocalNetworking": True}
    assert {k: v for k, v in debug.items() if k != "NSAppTransportSecurity"} == release
    assert release["CFBundleIdentifier"] == "$(PRODUCT_BUNDLE_IDENTIFIER)"


def test_the_ios_keychain_item_stays_on_this_device_and_every_status_is_checked():
    store = (IOS / "App/KeychainStore.swift").read_text()
    assert "kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly" in store
    assert "kSecAttrAccessibleAfterFirstUnlock\n" not in store and "kSecAttrAccessibleAfterFirstUnlock " not in store
    for call, check in (("SecItemCopyMatching", "KeychainStatus.found"), ("SecItemDelete", "KeychainStatus.checkDelete"),
                        ("SecItemAdd", "KeychainStatus.checkAdd")):
        assert re.search(rf"{re.escape(check)}\([^\n]*{call}\(", store), call

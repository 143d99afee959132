"""`make test` installs the Debian packages the Kotlin core needs when they are missing (issue 23): as root or
through sudo, else one line says what to install. apt-get is replaced by a stub that records its arguments."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ABSENT = "duet-test-no-such-package"
needs_dpkg = pytest.mark.skipif(shutil.which("dpkg-query") is None or shutil.which("make") is None,
                                reason="Debian's dpkg-query and make are needed")


def _stub(tmp_path: Path) -> tuple[Path, Path]:
    """An apt-get stand-in that appends its arguments to calls.txt."""
    calls = tmp_path / "calls.txt"
    stub = tmp_path / "apt-get"
    stub.write_text(f"#!/bin/sh\necho \"$*\" >> {calls}\n")
    stub.chmod(0o755)
    tmp_path.chmod(0o777)  # writable by the unprivileged user of the last test
    return stub, calls


def _make(*args: str, user: int | None = None) -> subprocess.CompletedProcess:
    prefix = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"] if user is not None else []
    # Run as a top-level make even under `make test` (CI): a nested one would name itself "make[1]:" in its errors.
    env = {name: value for name, value in os.environ.items() if name not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    return subprocess.run([*prefix, "make", "--no-print-directory", "-C", str(REPO), *args], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL, env={**env, "HOME": "/tmp"})


def test_make_test_checks_the_debian_packages_before_anything_else():
    dry = _make("-n", "test", f"MOBILE_DEBS={ABSENT}", "APT_GET=true")
    assert dry.returncode == 0, dry.stderr
    assert "dpkg-query" in dry.stdout and dry.stdout.index("dpkg-query") < dry.stdout.index("pytest")
    kotlin = _make("-n", "android-core-test", "APT_GET=true")
    assert kotlin.stdout.index("dpkg-query") < kotlin.stdout.index("android_demo/core/test.sh")


@needs_dpkg
@pytest.mark.skipif(os.geteuid() != 0, reason="installing is tested as root")
def test_as_root_the_missing_packages_and_only_those_are_installed(tmp_path):
    stub, calls = _stub(tmp_path)
    installed = subprocess.run(["dpkg-query", "-W", "-f=${Package}\n", "dpkg"], capture_output=True, text=True).stdout
    assert installed.strip() == "dpkg"
    result = _make("mobile-deps", f"MOBILE_DEBS=dpkg {ABSENT}", f"APT_GET={stub}")
    assert result.returncode == 0, result.stderr
    assert calls.read_text().splitlines() == ["update -q", f"install -y -q {ABSENT}"]
    assert f"installing the Debian packages {ABSENT}" in result.stdout


@needs_dpkg
def test_nothing_is_installed_when_nothing_is_missing(tmp_path):
    stub, calls = _stub(tmp_path)
    result = _make("mobile-deps", "MOBILE_DEBS=dpkg", f"APT_GET={stub}")
    assert result.returncode == 0 and result.stdout == "" and not calls.exists()


@needs_dpkg
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root to become another user")
def test_without_root_or_sudo_one_line_says_what_to_install(tmp_path):
    stub, calls = _stub(tmp_path)
    result = _make("mobile-deps", f"MOBILE_DEBS=dpkg {ABSENT}", f"APT_GET={stub}", user=65534)
    assert result.returncode != 0 and not calls.exists()
    said = [line for line in result.stderr.splitlines() if not line.startswith("make:")]
    assert said == [f"make test needs the Debian packages {ABSENT}: run 'sudo apt-get install {ABSENT}' "
                    f"(or make as root)"]

"""The built wheel: no top-level module of ours but the two packages (no `cli` to clash with another package's),
the `duet` command pointing inside the package, the export targets registered as entry points, the schema shipped."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_wheel_installs_two_packages_the_duet_command_and_the_exporter_entry_points(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path), str(REPO)], check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if "/" not in n], "a top-level module would clash with other packages' names"
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == {"toolkit", "exporters"}
    assert "toolkit/protocol/schemas/manifest.schema.json" in names
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "duet = toolkit.cli.commands:cli" in text
    assert "[duet.exporters]" in text and all(f"{t} = exporters.{t}" in text for t in ("coreml", "executorch", "tflite"))

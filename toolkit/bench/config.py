"""The settings of `cli.py bench` (light to import: `cli.py` builds its options from these fields)."""

from __future__ import annotations

from dataclasses import dataclass

from toolkit.errors import ConfigError
from toolkit.options import option

TARGETS_ON_ANDROID = ("executorch", "tflite")  # the targets the Android app runs, in its order of preference


def _batch_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as err:
        raise ConfigError(f"--batch-sizes must be comma-separated whole numbers, got {text!r}") from err
    if not sizes or min(sizes) < 1 or max(sizes) > 65536:
        raise ConfigError(f"--batch-sizes must list sizes from 1 to 65536, got {text!r}")
    return sizes


@dataclass(frozen=True)
class HostBenchConfig:
    """How the host benchmark samples; saved in report.json."""

    calls: int = option(500, "Timed program calls per runtime, after the warm-up (latency percentiles).",
                        minimum=1, maximum=1_000_000)
    warmup: int = option(50, "Untimed program calls before them.", minimum=0, maximum=100_000)
    batch_sizes: str = option("1,4,16,64,256,1024", "Generator batch sizes of the throughput curve (comma-separated).")
    threads: int = option(1, "CPU threads of every runtime and of PyTorch (the export's own timing uses 1).",
                          minimum=1, maximum=256)
    host: bool = option(True, "Measure on this host (--no-host: only the phone and the imported files).")

    def __post_init__(self) -> None:
        _batch_sizes(self.batch_sizes)

    @property
    def sizes(self) -> tuple[int, ...]:
        return _batch_sizes(self.batch_sizes)


@dataclass(frozen=True)
class PhoneOptions:
    """The on-phone benchmark (`bench --adb SERIAL`); saved in report.json."""

    HELP_PREFIX = "Phone: "
    adb: str = option("", "Serial of an Android phone (`adb devices`): push the export, run the demo app's benchmark "
                          "and fold its benchmark_results.json into the report. The app must be installed.",
                      flag="--adb")
    phone_target: str | None = option(None, "Target the app runs [the first of executorch, tflite in the export].",
                               choices=TARGETS_ON_ANDROID)
    phone_iterations: int = option(50, "Timed forward calls in the app (num_iter).", minimum=1, maximum=100_000)
    phone_warmup: int = option(10, "Untimed calls before them (num_warm_up_iter).", minimum=0, maximum=100_000)
    phone_threads: int = option(1, "CPU threads the app gives its runtime (num_threads), as the host's --threads.",
                                minimum=1, maximum=64)
    phone_timeout: int = option(120, "Seconds to wait for the app's results while it runs (an app that ended "
                                     "without them is reported at once).", minimum=1, maximum=86_400)
    remote_dir: str = option("/data/local/tmp/duet", "Where the export is pushed on the phone (the app's model_dir).")
    executor_runner: str = option("", "ExecuTorch's executor_runner built for the phone: also run it on model.pte "
                                      "over adb and parse its timings.")
    benchmark_model: str = option("", "LiteRT's benchmark_model built for the phone: also run it on model.tflite "
                                      "over adb and parse its timings and memory.")

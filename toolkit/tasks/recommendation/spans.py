"""How much refreshed slots buy by how long a device's test period lasts: `python -m toolkit.tasks.recommendation.spans RUN`.

A device's span is the time from its last interaction before the test period to its last test interaction. Each row
groups devices by span and gives the mean of their per-device selection metric (UAUC) for Base, fine-tuning once,
DUET once (evaluation.json) and DUET under each periodic refresh of refresh.json, with its gain over DUET once.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

DAY = 86_400.0
GROUPS = ((0.0, 1.0, "within a day"), (1.0, 30.0, "1-30 days"), (30.0, 365.0, "30-365 days"),
          (365.0, float("inf"), "over a year"))


def device_spans(task) -> dict[str, float]:
    """Each test device's span in days, by device id."""
    data = task.data
    spans = {}
    for device in task.devices("test"):
        times = data.times[data.offsets[device] : data.offsets[device + 1]]
        spans[str(int(device))] = float(times[-1] - times[data.test_start[device] - 1]) / DAY
    return spans


def span_table(run_dir: Path, cache_dir: Path | None = None) -> str:
    """The Markdown table of the module docstring."""
    from toolkit.evaluation.report import refresh_settings, load_run_file
    from toolkit.training.runs import EVALUATION_FILE, load_run

    spans = device_spans(load_run(run_dir, cache_dir).task)
    once = load_run_file(run_dir, EVALUATION_FILE)["per_device"]
    columns = {"base": once["base"], "finetune once": once["finetune"], "duet once": once["duet"]}
    settings = refresh_settings(run_dir)
    refreshed = [name for name, entry in settings.items() if entry["refresh"]["refresh"] == "periodic"]
    for name in refreshed:
        columns[f"duet {name}"] = settings[name]["per_device"]["duet"]
    rows = ["| test period spans | devices | " + " | ".join(columns) + " | " +
            " | ".join(f"{name} − once" for name in refreshed) + " |",
            "|---|---:|" + "---:|" * (len(columns) + len(refreshed))]
    for low, high, label in GROUPS:
        chosen = [d for d, span in spans.items() if low <= span < high and d in once["duet"]]
        if not chosen:
            continue
        means = {name: float(np.mean([values[d] for d in chosen])) for name, values in columns.items()}
        gains = [means[f"duet {name}"] - means["duet once"] for name in refreshed]
        rows.append(f"| {label} | {len(chosen)} | " + " | ".join(f"{v:.4f}" for v in means.values()) + " | " +
                    " | ".join(f"{g:+.4f}" for g in gains) + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="An evaluated recommendation run (evaluation.json, refresh.json).")
    parser.add_argument("--cache-dir", type=Path, default=None, help="The data cache (default: the user cache).")
    args = parser.parse_args()
    print(span_table(args.run, args.cache_dir))


if __name__ == "__main__":
    main()

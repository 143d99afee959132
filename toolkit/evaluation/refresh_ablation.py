"""What refreshed slots can buy on a recommendation run: `python -m toolkit.evaluation.refresh_ablation RUN`.

Two measurements. By span: a device's span is the time from its last interaction before the test period to its last
test interaction; devices grouped by span, with the mean of their per-device selection metric (UAUC) for Base,
fine-tuning once, DUET once (evaluation.json) and DUET under each periodic refresh (refresh.json). The upper bound:
DUET with each device's slots generated from its context as it stands at the END of its test period, the scored
samples included (a leak no refresh can reach): what the freshest possible context would give.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from toolkit.errors import ConfigError
from toolkit.tasks.recommendation.task import RecommendationTask

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


def load_recommendation_run(run_dir: Path, cache_dir: Path | None = None):
    """The run at `run_dir`; ConfigError unless it is a recommendation run (this analysis reads click times)."""
    from toolkit.training.runs import load_run

    run = load_run(run_dir, cache_dir)
    if not isinstance(run.task, RecommendationTask):
        raise ConfigError(f"{run_dir}: a run of the {run.task.name!r} task; this analysis reads the click times of a "
                          f"recommendation run")
    return run


def span_table(run) -> str:
    """The Markdown table of the module docstring, for a run of `load_recommendation_run`."""
    from toolkit.evaluation.report import refresh_settings, load_run_file
    from toolkit.training.runs import EVALUATION_FILE

    task, run_dir = run.task, run.path
    spans = device_spans(task)
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


def upper_bound(run) -> dict[str, float]:
    """The task's metrics of DUET with slots generated once per device from its context at the end of its test period
    (the scored samples included), beside DUET once; each device's slots bound to its rows as in the default protocol."""
    import torch

    from toolkit.model.slots import bound_slots
    from toolkit.training.steps import collect, generated_from, split_outputs

    task, model, generator = run.task, run.duet, run.generator
    devices = np.asarray(task.devices("test"))
    ends = np.diff(task.data.offsets)[devices]
    with torch.no_grad():
        samples = task._context(devices, ends)
        slots = generated_from(task, model, generator, samples)
        scored = []
        for batch in task.batches("test"):
            index = torch.from_numpy(np.searchsorted(devices, batch.devices))
            with bound_slots(model, [values[index] for values in slots]):
                scored.append((batch, model(*batch.inputs)))
    key = task.selection_metric
    return {"duet once": split_outputs(task, model, "test", generator).metrics(task)[key],
            "duet from the end of the test period (leaky)": collect(scored).metrics(task)[key]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="An evaluated recommendation run (evaluation.json, refresh.json).")
    parser.add_argument("--cache-dir", type=Path, default=None, help="The data cache (default: the user cache).")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch CPU threads.")
    args = parser.parse_args()
    import torch

    from toolkit.errors import DuetError

    torch.set_num_threads(args.threads)
    try:
        run = load_recommendation_run(args.run, args.cache_dir)
        print(span_table(run))
        bound = upper_bound(run)
    except DuetError as error:
        raise SystemExit(f"error: {error}") from None
    print("\n" + "\n".join(f"{name}: {value:.4f}" for name, value in bound.items()))


if __name__ == "__main__":
    main()

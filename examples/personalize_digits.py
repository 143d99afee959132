"""Personalise a model of your own with DUET, end to end: train Base and the generator, compare Base, per-device
fine-tuning and DUET, and export to ExecuTorch, LiteRT and Core ML with the slots as program inputs.

    python examples/personalize_digits.py --out runs/example --exports exports/example

Then serve the run and fetch a device's slots as a phone would (the task is found by its import path, which the
run records together with this folder):

    python cli.py keys add --file keys.txt
    python cli.py serve runs/example --exports exports/example --api-keys keys.txt
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import toolkit as duet
from digits_devices import DigitsDevices


def show_progress(event: dict) -> None:
    """One line per finished epoch of the training log."""
    if "epoch" in event and "train_loss" in event:
        print(f"{event['stage']:>5} epoch {event['epoch']:>2}  loss {event['train_loss']:.4f}  "
              f"val accuracy {event['val_accuracy']:.4f}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/example", help="run directory to write (must not hold a run)")
    parser.add_argument("--exports", default="exports/example", help="export directory to write")
    parser.add_argument("--devices", type=int, default=40, help="train, val and test devices each")
    parser.add_argument("--epochs", type=int, default=30, help="epoch limit of each stage (early stopping)")
    parser.add_argument("--latency-calls", type=int, default=200, help="calls timed per runtime")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch's CPU threads (1: timings comparable)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    task = DigitsDevices(devices_per_split=args.devices)
    print(duet.describe_slots(task.build_model()))
    config = duet.TrainConfig(max_epochs=args.epochs, patience=5, lr=3e-3, backbone_lr=0.0)
    run = duet.train(task, args.out, config, listener=show_progress)
    result = duet.evaluate(run)
    report = duet.export(run, args.exports, options=duet.ExportOptions(latency_calls=args.latency_calls))
    summary = {"accuracy": {m: round(result["metrics"][m]["accuracy"], 4) for m in ("base", "finetune", "duet")},
               "finetune_ms_per_device": round(1e3 * result["metrics"]["finetune_seconds_per_device"], 1),
               "generate_ms_per_device": round(1e3 * result["metrics"]["generate_seconds_per_device"], 3),
               "runtimes": {name: {"accuracy": target["metrics_runtime"]["accuracy"],
                                   "p50_us": target["latency"]["runtime_p50_us"],
                                   "eager_p50_us": round(target["latency"]["pytorch_eager_p50_us"], 1)}
                            for name, target in report["targets"].items()}}
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()

"""The settings of training, the generator and the fine-tuning baseline: typed dataclasses saved with every run.

Light to import (no torch): `cli.py` builds its options from these fields (see toolkit.options).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from toolkit.errors import ConfigError
from toolkit.options import check_ranges, option
from toolkit.protocol.trigger import SCORES as TRIGGER_SCORES

TORCH_DEVICES = ("auto", "cpu", "cuda")  # --device: auto is CUDA when PyTorch sees a GPU, else the CPU


@dataclass(frozen=True)
class TrainConfig:
    """How Base and DUET are trained; saved in config.json. Tasks override defaults via `train_defaults()`."""

    max_epochs: int = option(20, "Epoch limit per stage; early stopping usually ends sooner "
                                 "[recommendation 20, image 60].", cli_default=None, minimum=1, maximum=100_000)
    patience: int = option(3, "Epochs without validation gain before a stage stops [recommendation 3, image 10].",
                           cli_default=None, minimum=1, maximum=100_000)
    batch_size: int = option(256, "Training samples per step [256].", cli_default=None, minimum=1,
                             maximum=10_000_000)
    lr: float = option(3e-3, "Adam learning rate of the Base stage [3e-3].", cli_default=None, minimum=0, above=True)
    generator_lr: float = option(1e-3, "Learning rate of the generator [1e-3].", cli_default=None, minimum=0,
                                 above=True)
    backbone_lr: float = option(1e-3, "Learning rate of the shared static layers while the generator trains; 0 "
                                      "freezes them [recommendation 1e-3 (DIN 0), image 0].", cli_default=None,
                                minimum=0)
    seed: int = option(0, "Seeds everything (initialisation, shuffling, negatives, devices); same seed, same run.",
                       minimum=0, maximum=2**32 - 1)
    torch_device: str = option("auto", "Where PyTorch trains: auto (CUDA when available, else the CPU), cpu or cuda "
                                       "(one GPU per process under torchrun).", flag="--device", choices=TORCH_DEVICES)
    world_size: int = 1  # processes that trained the run together (torchrun), set by train_run from the environment

    def __post_init__(self) -> None:
        check_ranges(self, "training settings")

    @classmethod
    def for_task(cls, task: Any, **overrides) -> "TrainConfig":
        """Defaults, then the task's own defaults, then the given overrides (None values ignored)."""
        chosen = {**task.train_defaults(), **{k: v for k, v in overrides.items() if v is not None}}
        return cls(**chosen)


@dataclass(frozen=True)
class GeneratorConfig:
    """Architecture of the parameter generator; saved with every run."""

    context_dim: int  # size of each context vector the task provides
    code_dim: int = option(64, "Size of the device code the generator writes every slot from.",
                           minimum=4, maximum=1024)
    sample_dim: int | None = option(None, "Width of the generator's per-sample layer, the part of its serving cost "
                                          "that grows with the context size [recommendation 16, image --code-dim].",
                                    minimum=4, maximum=1024)
    rank: int = option(4, "Rank of each generated weight residual (the generator's size grows linearly with it).",
                       minimum=1, maximum=256)
    n_candidates: int = 4  # candidate codes mixed by the stabiliser
    stabilizer: bool = option(True, "Stable Weight Adapter in the generator (off for the ablation).")
    dropout: float = 0.1  # dropout on context vectors during training

    def __post_init__(self) -> None:
        """What any generator needs (a run's config.json is read back through here); the CLI's ranges are the
        narrower ones worth training with."""
        sizes = {k: getattr(self, k) for k in ("context_dim", "code_dim", "rank", "n_candidates")}
        if self.sample_dim is not None:
            sizes["sample_dim"] = self.sample_dim
        wrong = [f"{k}={v!r}" for k, v in sizes.items() if type(v) is not int or not 1 <= v <= 1 << 20]
        if wrong:
            raise ConfigError(f"generator settings: sizes must be integers from 1 to {1 << 20}: {', '.join(wrong)}")
        if not (isinstance(self.dropout, (int, float)) and 0 <= self.dropout < 1):
            raise ConfigError(f"generator settings: dropout must be in [0, 1), got {self.dropout!r}")

    @property
    def sample_width(self) -> int:
        """The per-sample layer's width as built: `sample_dim`, or the code width when it is None."""
        return self.sample_dim or self.code_dim

    @classmethod
    def for_task(cls, task: Any, context_dim: int, **overrides) -> "GeneratorConfig":
        """Defaults, then the task's own (`Task.generator_defaults`), then the given overrides (None values ignored)."""
        return cls(context_dim=context_dim, **{**task.generator_defaults(),
                                               **{k: v for k, v in overrides.items() if v is not None}})


@dataclass(frozen=True)
class FinetuneConfig:
    """Per-device fine-tuning, the baseline DUET replaces: all parameters of a copy of Base.

    None takes the task's default (recommendation: lr 1e-3, 1 epoch, batch 32; image: lr 1e-3, 5 epochs
    of one full batch of the K labeled images).
    """

    lr: float | None = option(None, "Fine-tuning baseline: Adam lr [1e-3].", flag="--finetune-lr", minimum=0,
                              above=True)
    epochs: int | None = option(None, "Fine-tuning baseline: epochs over the device's labeled data "
                                      "[recommendation 1, image 5].", flag="--finetune-epochs", minimum=1,
                                maximum=100_000)
    batch_size: int | None = option(None, "Fine-tuning baseline: batch size [recommendation 32, image K].",
                                    flag="--finetune-batch", minimum=1, maximum=10_000_000)
    seed: int = 0  # seeds the device's shuffling and negatives
    # where PyTorch evaluates every method, Base and DUET too (here because `cli.py evaluate` offers this class)
    torch_device: str = option("auto", "Where PyTorch evaluates: auto (CUDA when available, else the CPU), cpu or "
                                       "cuda.", flag="--device", choices=TORCH_DEVICES)

    def __post_init__(self) -> None:
        check_ranges(self, "fine-tuning settings")

    def resolve(self, defaults: dict) -> dict:
        """The fine-tuning loop's settings: lr, epochs, batch_size and seed, the task's defaults where None."""
        chosen = {k: v for k, v in asdict(self).items() if v is not None and k != "torch_device"}
        return {**defaults, **chosen}


REFRESH_MODES = ("periodic", "trigger")  # --refresh


@dataclass(frozen=True)
class RefreshConfig:
    """When DUET's slots are regenerated during the test period (`cli.py evaluate`); saved in refresh.json.

    periodic: before every K-th test sample of a device (`--refresh-every K`; "once", the default, is only before its
    first); trigger: whenever the device's own request trigger fires (docs/formats.md), its threshold chosen on the
    validation devices so that it makes at most `--budget` requests per 100 samples beyond the first.
    """

    refresh: str = option("periodic", "How slots are refreshed during the test period: periodic (every "
                                      "--refresh-every samples) or trigger (the device's drift score, --budget).",
                          choices=REFRESH_MODES)
    refresh_every: str = option("once", "Periodic refresh: regenerate a device's slots before every K-th test sample "
                                        "from its history up to then; 'once' (only before the first) is the default "
                                        "protocol and writes metrics.json, any K writes refresh.json.")
    budget: float | None = option(None, "Trigger refresh: requests per device per 100 test samples beyond the first "
                                        "(the threshold is chosen on the validation devices to stay within it).",
                                  minimum=0, maximum=100)
    trigger_score: str = option("window", "Trigger refresh: the drift score the device computes, window (distance "
                                          "between its latest samples' features now and at the last request) or "
                                          "confidence (1 - the current slots' confidence on its latest samples).",
                                choices=TRIGGER_SCORES)
    trigger_window: int | None = option(None, "Trigger refresh: how many of the latest samples the score reads "
                                              "[the task's: recommendation 5, image 10].", minimum=1, maximum=1024)
    finetune_refresh: bool = option(True, "Periodic refresh: also re-fine-tune each device before every block (a copy "
                                          "of Base on its labeled samples up to then, timed).")

    def __post_init__(self):
        check_ranges(self, "refresh settings")
        if self.refresh_every != "once" and not (self.refresh_every.isdigit() and 1 <= int(self.refresh_every) <= 10**6):
            raise ConfigError(f"--refresh-every takes 'once' or a whole number of samples from 1, found "
                              f"{self.refresh_every!r}")
        if self.refresh == "trigger":
            if self.refresh_every != "once":
                raise ConfigError("--refresh trigger decides by itself when to refresh: drop --refresh-every")
            if self.budget is None:
                raise ConfigError("--refresh trigger needs --budget B, requests per 100 samples from 0 to 100")
        elif self.budget is not None:
            raise ConfigError("--budget goes with --refresh trigger")

    def resolved(self, task: Any) -> "RefreshConfig":
        """These settings with the task's trigger window where none is given (`Task.trigger_window`)."""
        if self.trigger_window is not None:
            return self
        return replace(self, trigger_window=int(task.trigger_window))

    @property
    def every(self) -> int | None:
        """K of periodic refresh; None for "once"."""
        return None if self.refresh_every == "once" else int(self.refresh_every)

    @property
    def is_default(self) -> bool:
        """True for today's protocol: generated once per device (metrics.json)."""
        return self.refresh == "periodic" and self.every is None

    @property
    def name(self) -> str:
        """The setting's key in refresh.json: "every-5", "trigger-window-b25"."""
        if self.refresh == "trigger":
            return f"trigger-{self.trigger_score}-w{self.trigger_window}-b{self.budget:g}"
        return "once" if self.every is None else f"every-{self.every}"


@dataclass(frozen=True)
class ReportOptions:
    """Which table `cli.py report` prints (a comparison of methods unless one of the flags says otherwise)."""

    metrics: str | None = option(None, "Comma-separated metric names to show (default: all of the task's metrics).")
    shifted: bool = option(False, "Report the most-shifted devices (metrics_shifted.json).")
    timing: bool = option(False, "Report fine-tuning vs generation time per device instead.")
    exports: bool = option(False, "The arguments are export folders: sizes, runtime scores and latency from their "
                                  "report.json.")
    ablation: bool = option(False, "Report DUET variants (generator settings, epochs, slot stability).")
    refresh: bool = option(False, "Report slots refreshed during the test period (refresh.json): each setting's "
                                  "metrics, requests and compute time per device.")
    plot: str | None = option(None, "With --refresh: also draw the selection metric against requests per device "
                                    "(periodic refresh, the trigger, Base and fine-tuning) into this PNG file.")

"""The settings of training, the generator and the fine-tuning baseline: typed dataclasses saved with every run.

Light to import (no torch): `cli.py` builds its options from these fields (see toolkit.options).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from toolkit.options import check_ranges, option

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
        from toolkit.errors import ConfigError

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


@dataclass(frozen=True)
class ReportOptions:
    """Which table `cli.py report` prints (a comparison of methods unless one of the flags says otherwise)."""

    metrics: str | None = option(None, "Comma-separated metric names to show (default: all of the task's metrics).")
    shifted: bool = option(False, "Report the most-shifted devices (metrics_shifted.json).")
    timing: bool = option(False, "Report fine-tuning vs generation time per device instead.")
    exports: bool = option(False, "The arguments are export folders: sizes, runtime scores and latency from their "
                                  "report.json.")
    ablation: bool = option(False, "Report DUET variants (generator settings, epochs, slot stability).")

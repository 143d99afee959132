"""The `train` options of the recommendation task (light: `cli.py` reads them without loading the task)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from toolkit.data.formats import FORMATS
from toolkit.options import option


@dataclass(frozen=True)
class RecommendationOptions:
    """What a user sets on the command line; `RecommendationTask.from_options` reads them by name."""

    HELP_PREFIX: ClassVar[str] = "Recommendation task: "  # starts the help of each option

    data_path: str | None = option(None, "A ratings file of your own instead of the embedded data.", flag="--data")
    data_format: str | None = option(None, "Layout of --data: " + "; ".join(
        f"{name}: {spec.description}" for name, spec in FORMATS.items()) + ".", flag="--format", choices=tuple(FORMATS))
    max_users: int = option(0, "Use only the first N users (quick trials; 0 = all).", minimum=0, maximum=2**31 - 1)
    embed_dim: int = option(32, "Item embedding size.", minimum=1, maximum=4096)
    context_items: int = option(100, "How many of a device's most recent items the generator reads.", minimum=1,
                                maximum=10_000)
    context_time: bool = option(True, "Whether the generator also reads the timestamps of the device's items.")

"""The `train` options of the image task (light: `cli.py` reads them without loading the task)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from toolkit.options import option


@dataclass(frozen=True)
class ImageOptions:
    """What a user sets on the command line; `ImageTask.from_options` reads them by name."""

    HELP_PREFIX: ClassVar[str] = "Image task: "  # starts the help of each option

    context_images: int = option(16, "K unlabeled recent images per device that the generator reads.", minimum=1,
                                 maximum=10_000)
    train_devices: int = option(300, "Simulated training devices.", minimum=1, maximum=1_000_000)
    test_devices: int = option(60, "Held-out devices.", minimum=1, maximum=1_000_000)
    fresh_devices: bool = option(True, "Every training episode draws a new simulated device (label mix and writing "
                                       "style) over the training digits, or re-visits the fixed training devices "
                                       "(the ablation).", flag="--fresh-devices/--fixed-devices")
    drift_after: int = option(0, "Validation and test devices drift inside their test period: from this image on, a "
                                 "new writing style and label mix (0: no drift; training devices never drift).",
                              minimum=0, maximum=10_000)

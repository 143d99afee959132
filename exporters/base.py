"""What the built-in targets share to implement the contract (toolkit.exporting.contract): named export stages, the
choice of weights worth compressing, and the rows each linear layer transforms."""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from typing import Iterator, Sequence

import numpy as np

from toolkit.errors import DuetError
from toolkit.exporting.contract import MIN_ROW_ELEMENTS, ExportError

logger = logging.getLogger(__name__)


@contextmanager
def stage(target: str, name: str) -> Iterator[None]:
    """Name the export stage that failed: tool errors become ExportError('<target>: <stage> failed: ...')."""
    started = time.perf_counter()
    try:
        yield
    except DuetError:
        raise
    except Exception as err:  # the SDKs raise anything; the user needs to know which stage broke
        raise ExportError(f"{target}: {name} failed: {type(err).__name__}: {err}") from err
    logger.info("%s: %s took %.1f s", target, name, time.perf_counter() - started)


def worth_quantizing(shape: Sequence[int], min_elements: int) -> bool:
    """A static weight is compressed when it has `min_elements` elements and enough per row to pay for its scale."""
    numel = int(np.prod(shape, dtype=np.int64)) if len(shape) else 1
    return len(shape) >= 1 and numel >= max(min_elements, 1) and numel // max(int(shape[0]), 1) >= MIN_ROW_ELEMENTS


def linear_rows(module, args: Sequence) -> dict[str, int]:
    """Rows each nn.Linear of `module` transforms in one call `module(*args)` (its most over repeated uses), by name."""
    import torch
    from torch import nn

    rows: dict[str, int] = {}

    def record(name: str):
        def hook(_layer, _inputs, output):
            rows[name] = max(rows.get(name, 0), output.numel() // max(int(output.shape[-1]), 1))
        return hook

    hooks = [layer.register_forward_hook(record(name)) for name, layer in module.named_modules()
             if isinstance(layer, nn.Linear)]
    try:
        with torch.no_grad():
            module(*args)
    finally:
        for hook in hooks:
            hook.remove()
    return rows



"""DUET and fine-tuning with slots refreshed during the test period: every K samples, or when the device's trigger fires.

A device's test samples are scored in its time order. Before a sample, its slots may be regenerated from its context
as it stands then (the samples before it, never the sample itself: `Task.stream`); the sample is then scored with the
slots of the device's latest request. "once" (requests only at the first sample) is `cli.py evaluate`'s protocol.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from toolkit.errors import TaskError
from toolkit.evaluation.stream import Stream
from toolkit.model.slots import bound_slots
from toolkit.protocol.trigger import RequestTrigger, TriggerConfig
from toolkit.tasks.base import Task, torch_device_of
from toolkit.training.runs import REFRESH_FILE, TRIGGER_FILE
from toolkit.training.steps import SplitOutputs, finetuned_copy, generated_from


@dataclass
class Refreshed:
    """A stream scored with refreshed slots: outputs in stream order, and what the refreshes cost."""

    outputs: SplitOutputs | None  # None when only the requests were simulated
    devices: np.ndarray  # the stream's devices, sorted
    requests: np.ndarray  # (devices,) requests (generations, or fine-tuned copies) per device, the first one included
    sources: np.ndarray  # (N,) the stream row whose context made each row's slots
    seconds: float  # spent fine-tuning, in all (0 for DUET: its cost is the serving program's time per request)

    @property
    def samples(self) -> int:
        return len(self.sources)

    def refreshes_per_100(self) -> float:
        """Requests after each device's first, per 100 samples: what `--budget` bounds."""
        return float((self.requests.sum() - len(self.devices)) * 100.0 / max(self.samples, 1))


class Periodic:
    """Request before every `every`-th sample of a device (None: only before its first, the "once" protocol)."""

    needs_outputs = False

    def __init__(self, every: int | None):
        self.every = every

    def decide(self, stream: Stream, rows: np.ndarray) -> np.ndarray:
        positions = stream.positions[rows]
        return positions == 0 if self.every is None else positions % self.every == 0

    def installed(self, stream: Stream, rows: np.ndarray) -> None:
        pass

    def observe(self, stream: Stream, rows: np.ndarray, outputs: np.ndarray) -> None:
        pass


@dataclass
class Triggered:
    """Each device runs `toolkit.protocol.trigger.RequestTrigger` (the phones' code, float for float): a request before
    its first sample, then whenever its trigger fires."""

    task: Task
    config: TriggerConfig
    windows: list[list[list[float]]]  # per stream row: the drift features of its context's latest `window` samples
    triggers: dict[int, RequestTrigger] = field(default_factory=dict)
    confidence: dict[int, float | None] = field(default_factory=dict)  # of each device's latest scored sample

    @classmethod
    def of(cls, task: Task, config: TriggerConfig, stream: Stream) -> "Triggered":
        return cls(task, config, trigger_windows(task, stream, config.score, config.window))

    @property
    def needs_outputs(self) -> bool:
        return self.config.score == "confidence"

    def decide(self, stream: Stream, rows: np.ndarray) -> np.ndarray:
        fire = np.zeros(len(rows), dtype=bool)
        for i, row in enumerate(rows):
            device = int(stream.devices[row])
            if stream.positions[row] == 0:
                self.triggers[device] = RequestTrigger(self.config)
                self.confidence[device] = None
                fire[i] = True
            else:
                fire[i] = self.triggers[device].step(self.windows[row], self.confidence[device]).request
        return fire

    def installed(self, stream: Stream, rows: np.ndarray) -> None:
        for row in rows:
            self.triggers[int(stream.devices[row])].start(self.windows[row])

    def observe(self, stream: Stream, rows: np.ndarray, outputs: np.ndarray) -> None:
        if self.needs_outputs:
            for row, value in zip(rows, self.task.sample_confidence(outputs)):
                self.confidence[int(stream.devices[row])] = float(value)


def trigger_windows(task: Task, stream: Stream, score: str, size: int) -> list[list[list[float]]]:
    """Per stream row, the window the trigger reads: the window score's drift features (`latest_windows`); the
    confidence score reads none, so each row gets one placeholder sample and the task's features are never asked for
    (a task without any, e.g. recommendation without timestamps, can still use it)."""
    if score == "confidence":
        return [[[0.0]] for _ in range(stream.rows)]
    return latest_windows(task, stream, size)


def latest_windows(task: Task, stream: Stream, size: int) -> list[list[list[float]]]:
    """Per stream row, the drift features of the latest `size` samples of its context, oldest first."""
    features = np.asarray(task.drift_features(stream.context), dtype=np.float64)
    mask = stream.context.mask.cpu().numpy()
    if features.shape[:2] != mask.shape:
        raise TaskError(f"{type(task).__name__}.drift_features gave {features.shape[:2]} rows and samples for a "
                        f"context of {mask.shape}")
    return [features[row][mask[row]][-size:].tolist() for row in range(len(mask))]


def refreshed_duet(task: Task, model: nn.Module, generator: nn.Module, stream: Stream, policy,
                   score: bool = True) -> Refreshed:
    """Walk the stream one step at a time (step s: every device's s-th sample): the policy decides which devices
    request; their slots are generated from those rows' contexts (one generator call); every row of the step is
    scored with its device's latest slots; the policy sees the outputs. `score=False` skips the model where the policy
    does not read outputs (choosing a threshold)."""
    model.eval()
    generator.eval()
    devices = np.unique(stream.devices)
    index = np.searchsorted(devices, stream.devices)
    order = np.lexsort((stream.devices, stream.positions))  # by step, then device
    bounds = np.searchsorted(stream.positions[order], np.arange(int(stream.positions.max()) + 2))
    requests = np.zeros(len(devices), dtype=np.int64)
    latest, sources = np.full(len(devices), -1), np.full(stream.rows, -1)
    current: list[torch.Tensor] | None = None
    outputs: np.ndarray | None = None
    run_model = score or policy.needs_outputs
    target = torch_device_of(model)
    with torch.no_grad():
        for step in range(len(bounds) - 1):
            rows = order[bounds[step] : bounds[step + 1]]
            fire = policy.decide(stream, rows) | (stream.positions[rows] == 0)
            fired = rows[fire]
            if len(fired):
                if run_model:
                    samples = stream.rows_of(fired).context.to(target)
                    new = generated_from(task, model, generator, samples)
                    if current is None:
                        current = [torch.zeros((len(devices), *v.shape[1:]), dtype=v.dtype, device=v.device)
                                   for v in new]
                    for slot, values in zip(current, new):
                        slot[torch.from_numpy(index[fired]).to(slot.device)] = values
                requests[index[fired]] += 1
                latest[index[fired]] = fired
                policy.installed(stream, fired)
            sources[rows] = latest[index[rows]]
            if run_model:
                batch = stream.rows_of(rows)
                chosen = torch.from_numpy(index[rows]).to(target)
                with bound_slots(model, [slot[chosen] for slot in current]):
                    out = model(*(x.to(target) for x in batch.inputs)).cpu().numpy()
                if len(out) != len(rows):
                    raise TaskError(f"{type(task).__name__}.stream: the model gave {len(out)} output rows for "
                                    f"{len(rows)} samples; a stream row must be one sample")
                if outputs is None:
                    outputs = np.zeros((stream.rows, *out.shape[1:]), dtype=out.dtype)
                outputs[rows] = out
                policy.observe(stream, rows, out)
    scored = SplitOutputs(outputs, _numpy(stream.targets), stream.devices) if run_model and score else None
    return Refreshed(scored, devices, requests, sources, 0.0)


def refreshed_finetune(task: Task, model: nn.Module, stream: Stream, every: int | None, settings: dict[str, Any],
                       advance: Callable[[], None] | None = None) -> Refreshed:
    """The fine-tuning baseline under the same periodic refresh: before each block of `every` samples of a device, a
    fresh copy of `model` is fine-tuned on its labeled samples up to then (`Task.finetune_batches(seen=...)`), timed,
    and scores the block. The first block's copy is the "once" baseline's."""
    devices = np.unique(stream.devices)
    requests = np.zeros(len(devices), dtype=np.int64)
    sources = np.full(stream.rows, -1)
    outputs: np.ndarray | None = None
    seconds = 0.0
    for d, device in enumerate(devices):
        rows = np.flatnonzero(stream.devices == device)
        rows = rows[np.argsort(stream.positions[rows], kind="stable")]
        size = every or len(rows)
        for start in range(0, len(rows), size):
            tuned, spent = finetuned_copy(task, model, int(device), settings, seen=start)
            seconds += spent
            requests[d] += 1
            block = rows[start : start + size]
            sources[block] = block[0]
            with torch.no_grad():
                out = tuned(*(x.to(torch_device_of(tuned)) for x in stream.rows_of(block).inputs)).cpu().numpy()
            if outputs is None:
                outputs = np.zeros((stream.rows, *out.shape[1:]), dtype=out.dtype)
            outputs[block] = out
        if advance:
            advance()
    return Refreshed(SplitOutputs(outputs, _numpy(stream.targets), stream.devices), devices, requests, sources,
                     seconds)


def choose_threshold(task: Task, model: nn.Module, generator: nn.Module, stream: Stream, score: str, window: int,
                     budget: float, iterations: int = 16) -> tuple[float, float]:
    """The lowest threshold (to 2^-iterations of the search interval) at which the trigger makes at most `budget`
    requests per 100 samples of `stream` beyond each device's first: (threshold, the rate it makes there)."""
    windows = trigger_windows(task, stream, score, window)

    @functools.lru_cache(maxsize=None)
    def rate(threshold: float) -> float:
        policy = Triggered(task, TriggerConfig(score, window, threshold), windows)
        return refreshed_duet(task, model, generator, stream, policy, score=False).refreshes_per_100()

    low, high = 0.0, 1.0
    while rate(high) > budget:  # the confidence score is at most 1: only the window score can need more
        low, high = high, high * 2
        if high > 1e12:
            raise TaskError(f"no threshold keeps the trigger within {budget} requests per 100 samples")
    for _ in range(iterations):
        middle = (low + high) / 2
        low, high = (low, middle) if rate(middle) <= budget else (middle, high)
    return high, rate(high)


def _numpy(value: Any) -> Any:
    if value is None:
        return None
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def evaluate_refresh(run, refresh, finetune, progress: Callable[[str, int], Callable[[], None]] | None = None,
                     shifted_fraction: float = 0.25) -> dict[str, Any]:
    """One refresh.json entry: Base, DUET under `refresh` (a RefreshConfig) and, for periodic refresh, fine-tuning
    under the same refresh; the metrics, requests per device and compute seconds per device of each."""
    from dataclasses import asdict

    from toolkit.evaluation.evaluate import check_finite_outputs, generate_timings, per_device
    from toolkit.training.distributed import torch_device
    from toolkit.training.serving import ServingPrograms
    from toolkit.training.steps import split_outputs

    task = run.task
    refresh = refresh.resolved(task)
    compute_device = torch_device(finetune.torch_device)
    for module in (run.base, run.duet, run.generator):
        module.to(compute_device)
    stream = Stream.of(task, "test")
    entry: dict[str, Any] = {"refresh": asdict(refresh), "samples": stream.rows}
    if refresh.refresh == "trigger":
        threshold, rate = choose_threshold(task, run.duet, run.generator, Stream.of(task, "val"),
                                           refresh.trigger_score, refresh.trigger_window, refresh.budget)
        config = TriggerConfig(refresh.trigger_score, refresh.trigger_window, threshold, refresh.budget)
        entry["trigger"] = {**config.to_json(), "validation_refreshes_per_100": rate}
        policy: Any = Triggered.of(task, config, stream)
    else:
        policy = Periodic(refresh.every)
    duet = refreshed_duet(task, run.duet, run.generator, stream, policy)
    per_request = generate_timings(run, ServingPrograms(run), duet.devices)["forward"]
    outputs = {"base": split_outputs(task, run.base, "test", None), "duet": duet.outputs}
    cost = {"duet": _cost(duet, float(duet.requests.mean()) * per_request)}
    settings = finetune.resolve(task.finetune_defaults())
    if refresh.refresh == "periodic" and refresh.finetune_refresh:
        advance = progress("fine-tuning devices", len(duet.devices)) if progress else None
        tuned = refreshed_finetune(task, run.base, stream, refresh.every, settings, advance)
        outputs["finetune"] = tuned.outputs
        cost["finetune"] = _cost(tuned, tuned.seconds / len(tuned.devices))
    check_finite_outputs(outputs, run)
    shifted = task.shifted_devices(shifted_fraction)
    entry.update(metrics={m: o.metrics(task) for m, o in outputs.items()}, cost=cost, devices=int(len(duet.devices)),
                 shifted={} if shifted is None else {"devices": int(len(shifted)),
                                                     **{m: o.metrics(task, shifted) for m, o in outputs.items()}},
                 per_device={m: per_device(task, o) for m, o in outputs.items()},
                 settings={"finetune": settings, "generate_seconds_per_request": per_request,
                           "torch_threads": torch.get_num_threads(), "torch_device": compute_device.type})
    return entry


def _cost(result: Refreshed, seconds_per_device: float) -> dict[str, float]:
    return {"requests_per_device": float(result.requests.mean()), "refreshes_per_100": result.refreshes_per_100(),
            "seconds_per_device": seconds_per_device}


def write_refresh(run_dir, name: str, entry: dict[str, Any]) -> list:
    """Add (or replace) the setting `name` in the run's refresh.json; a trigger setting also writes trigger.json, the
    configuration a device runs (docs/formats.md)."""
    import json
    from pathlib import Path

    from toolkit.artifacts import write_json

    path = Path(run_dir) / REFRESH_FILE
    try:
        content = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError):
        content = {}  # an unreadable file is replaced: every entry can be measured again
    settings = content.get("settings") if isinstance(content, dict) and isinstance(content.get("settings"), dict) else {}
    settings[name] = entry
    written = [write_json(path, {"format": 1, "settings": settings})]
    if "trigger" in entry:
        config = TriggerConfig.from_json({k: v for k, v in entry["trigger"].items() if k in ("score", "window",
                                                                                              "threshold", "budget")})
        written.append(write_json(Path(run_dir) / TRIGGER_FILE, config.to_json()))
    return written

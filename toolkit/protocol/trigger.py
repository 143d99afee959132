"""The request trigger a device runs by itself: a drift score from what it holds and the decision to ask for new slots.

Specified once in docs/formats.md ("The request trigger"); the Kotlin core (`RequestTrigger`) and DuetKit
(`RequestTrigger`) implement the same arithmetic in the same order, and the golden vectors (tests/golden/trigger.json)
hold all three to the same scores, bit for bit, and the same decisions:

    trigger = RequestTrigger(TriggerConfig.parse(json_text))
    trigger.start(window)                      # slots were installed from the data as `window` stands
    decision = trigger.step(window, confidence)  # after each new sample: ask for new slots now?
    if decision.request and installed_new_slots():
        trigger.start(window)

or, around a `toolkit.client.DeviceClient`, `TriggeredRefresh(config).on_sample(window, lambda: device.refresh(body))`.

`window` is the latest samples' features, oldest first (the task says which numbers: timestamps in years for
recommendation, pixels for images); `confidence` in [0, 1] is how sure the current slots were of the sample just
scored. Plain float arithmetic, summed left to right: no numpy, so the Python evaluator decides exactly as a phone.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from toolkit.errors import DuetError, ManifestError, SlotShapeError

SCORES = ("window", "confidence")  # the drift scores a device can compute without the cloud
MAX_WINDOW = 1024
KEYS = {"score", "window", "threshold", "budget"}


@dataclass(frozen=True)
class TriggerConfig:
    """What a device needs to decide: the score, its window and the threshold (chosen on validation devices)."""

    score: str  # "window": RMS distance between the mean features of the latest `window` samples now and at the last
    # request; "confidence": 1 - the mean confidence of the current slots on the latest `window` samples since then
    window: int  # W: how many of the latest samples each score reads (1..1024)
    threshold: float  # ask for new slots when the score is strictly above it
    budget: float | None = None  # the requests per 100 samples it was chosen for (informational)

    def __post_init__(self):
        if self.score not in SCORES:
            raise ManifestError(f"trigger: score must be one of {', '.join(SCORES)}, found {self.score!r}")
        if type(self.window) is not int or not 1 <= self.window <= MAX_WINDOW:
            raise ManifestError(f"trigger: window must be a whole number from 1 to {MAX_WINDOW}, found {self.window!r}")
        for name in ("threshold", "budget"):
            value = getattr(self, name)
            if value is None and name == "budget":
                continue
            if type(value) not in (int, float) or not math.isfinite(value):
                raise ManifestError(f"trigger: {name} must be a finite number, found {value!r}")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"score": self.score, "window": self.window, "threshold": float(self.threshold)}
        if self.budget is not None:
            out["budget"] = float(self.budget)
        return out

    @classmethod
    def from_json(cls, obj: Any) -> "TriggerConfig":
        if not isinstance(obj, Mapping):
            raise ManifestError(f"trigger: expected a JSON object, found {type(obj).__name__}")
        unknown, missing = sorted(set(obj) - KEYS), sorted({"score", "window", "threshold"} - set(obj))
        if unknown or missing:
            raise ManifestError(f"trigger: keys are score, window, threshold and optionally budget; "
                                f"{'unknown ' + ', '.join(unknown) if unknown else ''}"
                                f"{'; ' if unknown and missing else ''}{'missing ' + ', '.join(missing) if missing else ''}")
        return cls(obj["score"], obj["window"], obj["threshold"], obj.get("budget"))

    @classmethod
    def parse(cls, text: str | bytes) -> "TriggerConfig":
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError) as err:
            raise ManifestError(f"trigger: not JSON ({err})") from err
        return cls.from_json(obj)


@dataclass(frozen=True)
class Decision:
    """One step's score and whether the device asks for new slots now."""

    score: float
    request: bool


def summary(window: Sequence[Sequence[float]], size: int) -> list[float]:
    """The mean of the last `size` feature vectors of `window` (oldest first), each feature summed left to right."""
    if not window:
        raise SlotShapeError("trigger: a window needs at least one sample")
    kept = list(window)[-size:]
    width = len(kept[0])
    if width == 0 or any(len(row) != width for row in kept):
        raise SlotShapeError(f"trigger: every sample of a window needs the same number (>= 1) of features, found "
                             f"{sorted({len(row) for row in kept})}")
    totals = [0.0] * width
    for row in kept:
        for j, value in enumerate(row):
            value = float(value)
            if not math.isfinite(value):
                raise SlotShapeError("trigger: features must be finite numbers")
            totals[j] += value
    return [total / len(kept) for total in totals]


def window_distance(now: Sequence[float], anchor: Sequence[float]) -> float:
    """sqrt(sum_j (now_j - anchor_j)^2 / d), summed left to right."""
    if len(now) != len(anchor):
        raise SlotShapeError(f"trigger: the window has {len(now)} features, the last request's had {len(anchor)}")
    total = 0.0
    for a, b in zip(now, anchor):
        difference = a - b
        total += difference * difference
    return math.sqrt(total / len(now))


class RequestTrigger:
    """A device's trigger state: the window summary at the last installed request, the confidences since then."""

    def __init__(self, config: TriggerConfig):
        self.config = config
        self.anchor: list[float] | None = None
        self.confidences: list[float] = []  # the latest `window` ones since the last request, oldest first

    def start(self, window: Sequence[Sequence[float]]) -> None:
        """New slots were installed from the device's data as `window` stands: the scores start again from here."""
        self.anchor = summary(window, self.config.window)
        self.confidences = []

    def step(self, window: Sequence[Sequence[float]], confidence: float | None = None) -> Decision:
        """A new sample joined the device's data (`window` now ends with it) and `confidence` is how sure the current
        slots were of it (None: not known). The score, and whether to ask for new slots now (always, before any)."""
        if confidence is not None:
            confidence = float(confidence)
            if not 0.0 <= confidence <= 1.0:  # NaN fails this too
                raise SlotShapeError(f"trigger: a confidence must be in [0, 1], found {confidence}")
            self.confidences = (self.confidences + [confidence])[-self.config.window:]
        now = summary(window, self.config.window)
        if self.anchor is None:
            return Decision(math.inf, True)
        score = self.score(now)
        return Decision(score, score > self.config.threshold)

    def score(self, now: Sequence[float]) -> float:
        if self.config.score == "window":
            return window_distance(now, self.anchor)
        if not self.confidences:
            return 0.0
        total = 0.0
        for value in self.confidences:
            total += value
        return 1.0 - total / len(self.confidences)


@dataclass(frozen=True)
class TriggeredOutcome:
    """What `TriggeredRefresh.on_sample` did: the trigger's decision and, when it asked, whether new slots came."""

    decision: Decision
    installed: bool | None  # None: it did not ask; False: the refresh failed and the fallback kept the slots


class TriggeredRefresh:
    """The device's rule for asking (the Kotlin core's and DuetKit's TriggeredRefresh): after each new sample the trigger
    decides; when it fires the device refreshes (`DeviceClient.refresh`, which keeps the last good slots on any
    failure) and, only when new slots were installed, the trigger starts again from the window they came from."""

    def __init__(self, config: TriggerConfig):
        self.config = config
        self.trigger = RequestTrigger(config)

    def on_sample(self, window: Sequence[Sequence[float]], refresh: Callable[[], Any],
                  confidence: float | None = None) -> TriggeredOutcome:
        """The trigger's step on `window` and `confidence`; `refresh` (raising a DuetError when refused) runs only when
        it fires."""
        decision = self.trigger.step(window, confidence)
        if not decision.request:
            return TriggeredOutcome(decision, None)
        try:
            refresh()
        except DuetError:
            return TriggeredOutcome(decision, False)
        self.trigger.start(window)
        return TriggeredOutcome(decision, True)

"""The request trigger a device runs (toolkit.protocol.trigger) against hand-computed scores, and its refusals; the golden
vectors that hold Kotlin and Swift to the same bits are in tests/test_golden.py."""

from __future__ import annotations

import math

import pytest

from toolkit.config import RefreshConfig
from toolkit.errors import ConfigError, ManifestError, ServiceError, SlotShapeError
from toolkit.protocol.trigger import RequestTrigger, TriggerConfig, TriggeredRefresh
from toolkit.tasks.image.task import ImageTask


def test_the_window_score_is_the_rms_distance_of_the_latest_means_and_a_request_moves_the_anchor():
    trigger = RequestTrigger(TriggerConfig("window", 2, 1.0))
    trigger.start([[1.0, 0.0], [2.0, 0.0], [3.0, 4.0]])  # the last two: mean (2.5, 2.0)
    quiet = trigger.step([[2.0, 0.0], [3.0, 4.0], [2.0, 0.0]])  # mean (2.5, 2.0): nothing moved
    assert quiet.score == 0.0 and not quiet.request
    moved = trigger.step([[3.0, 4.0], [2.0, 0.0], [6.5, 8.0]])  # mean (4.25, 4.0): sqrt((1.75^2 + 2^2) / 2)
    assert moved.score == pytest.approx(math.sqrt((1.75 ** 2 + 2.0 ** 2) / 2)) and moved.request
    trigger.start([[2.0, 0.0], [6.5, 8.0]])
    assert trigger.step([[2.0, 0.0], [6.5, 8.0]]).score == 0.0


def test_the_confidence_score_reads_the_latest_confidences_since_the_last_request():
    trigger = RequestTrigger(TriggerConfig("confidence", 2, 0.3125))
    trigger.start([[0.0]])
    assert trigger.step([[0.0]]).score == 0.0  # nothing scored since the request
    assert trigger.step([[0.0]], 0.875).score == 0.125
    at_threshold = trigger.step([[0.0]], 0.5)  # (0.875 + 0.5) / 2 = 0.6875
    assert at_threshold.score == 0.3125 and not at_threshold.request  # strictly above the threshold asks
    assert not trigger.step([[0.0]], None).request  # an unknown confidence adds nothing
    decision = trigger.step([[0.0]], 0.125)  # the window keeps 0.5 and 0.125
    assert decision.score == 0.6875 and decision.request
    trigger.start([[0.0]])
    assert trigger.step([[0.0]]).score == 0.0


def test_a_device_without_slots_always_asks():
    decision = RequestTrigger(TriggerConfig("window", 3, 1e9)).step([[1.0]])
    assert decision.request and decision.score == math.inf


@pytest.mark.parametrize("config, message", [
    ({"score": "drift", "window": 3, "threshold": 1}, "score must be one of"),
    ({"score": "window", "window": 0, "threshold": 1}, "window must be a whole number"),
    ({"score": "window", "window": True, "threshold": 1}, "window must be a whole number"),
    ({"score": "window", "window": 3, "threshold": float("nan")}, "threshold must be a finite number"),
    ({"score": "window", "window": 3}, "missing threshold"),
    ({"score": "window", "window": 3, "threshold": 1, "k": 2}, "unknown k"),
    ("window", "expected a JSON object"),
])
def test_bad_configurations_are_manifest_errors_that_say_what_is_wrong(config, message):
    with pytest.raises(ManifestError, match=message):
        TriggerConfig.from_json(config)


def test_a_configuration_round_trips_through_its_json():
    config = TriggerConfig.parse('{"score": "confidence", "window": 4, "threshold": 0.25, "budget": 10}')
    assert TriggerConfig.from_json(config.to_json()) == config
    with pytest.raises(ManifestError, match="not JSON"):
        TriggerConfig.parse("{score")


@pytest.mark.parametrize("start, window, confidence, message", [
    ([], [[1.0]], None, "at least one sample"),
    ([[1.0], [1.0, 2.0]], [[1.0]], None, "same number"),
    ([[1.0]], [[float("nan")]], None, "finite"),
    ([[1.0, 2.0]], [[1.0]], None, "the last request's had 2"),
    ([[1.0]], [[1.0]], 1.25, r"in \[0, 1\]"),
    ([[1.0]], [[1.0]], float("nan"), r"in \[0, 1\]"),
])
def test_inputs_a_trigger_cannot_read_are_slot_shape_errors(start, window, confidence, message):
    trigger = RequestTrigger(TriggerConfig("window", 3, 0.5))
    with pytest.raises(SlotShapeError, match=message):
        trigger.start(start)
        trigger.step(window, confidence)


@pytest.mark.parametrize("options, message", [
    ({"refresh_every": "0"}, "'once' or a whole number"),
    ({"refresh_every": "often"}, "'once' or a whole number"),
    ({"refresh": "trigger"}, "needs --budget"),
    ({"refresh": "trigger", "budget": 150.0}, "budget must be a finite number >= 0 and <= 100"),
    ({"refresh": "trigger", "budget": 5.0, "refresh_every": "3"}, "drop --refresh-every"),
    ({"budget": 5.0}, "--budget goes with --refresh trigger"),
])
def test_refresh_settings_that_contradict_each_other_are_refused(options, message):
    with pytest.raises(ConfigError, match=message):
        RefreshConfig(**options)


def test_refresh_settings_name_their_entry():
    assert RefreshConfig().is_default and RefreshConfig().name == "once"
    assert RefreshConfig(refresh_every="20").name == "every-20"
    trigger = RefreshConfig(refresh="trigger", budget=25.0, trigger_score="confidence")
    assert trigger.resolved(ImageTask).name == "trigger-confidence-w10-b25"  # the task's window unless one is given
    assert RefreshConfig(refresh="trigger", budget=2.5, trigger_window=3).resolved(ImageTask).name == \
        "trigger-window-w3-b2.5"


def test_the_device_asks_first_then_when_the_trigger_fires_and_starts_again_only_after_an_install():
    """The Kotlin core's and DuetKit's TriggeredRefresh tests, on the Python client's."""
    rule, calls = TriggeredRefresh(TriggerConfig("window", 1, 0.5)), []

    def installs():
        calls.append("ok")

    def fails():
        calls.append("refused")
        raise ServiceError("503 busy", 503, "busy")

    assert rule.on_sample([[30.0]], installs).installed is True  # no slots yet: asks
    quiet = rule.on_sample([[30.0], [30.25]], installs)
    assert quiet.installed is None and not quiet.decision.request
    assert rule.on_sample([[30.25], [31.0]], fails).installed is False
    again = rule.on_sample([[31.0], [31.0]], installs)  # still 1.0 from 30.0: the failed request did not move it
    assert again.decision.score == 1.0 and again.installed is True
    assert rule.on_sample([[31.0], [31.25]], installs).installed is None
    assert calls == ["ok", "refused", "ok"]

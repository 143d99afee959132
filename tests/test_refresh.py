"""Slots refreshed during the test period: each sample is scored with slots generated only from what came before it,
"once" through the stream is the default protocol, fine-tuning under refresh, the trigger's threshold and budget."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from toolkit.data.digits import DigitsDeviceConfig
from toolkit.data.sequences import SequenceProtocol
from toolkit.errors import ConfigError, TaskError
from toolkit.evaluation.refresh import (Periodic, Triggered, choose_threshold, latest_windows, refreshed_duet,
                                        refreshed_finetune)
from toolkit.evaluation.stream import Stream, positions_in_device
from toolkit.model.generator import GeneratorConfig, ParameterGenerator
from toolkit.model.slots import base_slots, bound_slots, slot_specs
from toolkit.protocol.trigger import TriggerConfig
from toolkit.tasks.base import Batch
from toolkit.tasks.image.task import ImageTask, ImageTaskConfig
from toolkit.tasks.recommendation.task import RecommendationTask, RecTaskConfig
from toolkit.training.runs import Run
from toolkit.training.steps import context_dim, finetune_and_score, split_outputs

FINETUNE = {"lr": 1e-3, "epochs": 1, "batch_size": 8, "seed": 0}


@pytest.fixture(scope="module")
def rec_task(tmp_path_factory):
    return RecommendationTask(RecTaskConfig(protocol=SequenceProtocol(max_users=16), embed_dim=8, context_items=12),
                              tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def image_task():
    return ImageTask(ImageTaskConfig(devices=DigitsDeviceConfig(train_devices=12, test_devices=4, val_devices=6,
                                                                context_images=4, images_per_device=14)))


def _run(task) -> Run:
    """Untrained models with a generator whose slots visibly depend on the context (random weights, no stabiliser)."""
    torch.manual_seed(0)
    model = task.build_model().eval()
    generator = ParameterGenerator(GeneratorConfig(context_dim=context_dim(task, model), stabilizer=False),
                                   slot_specs(model)).eval()
    with torch.no_grad():
        for p in generator.parameters():
            p.mul_(4.0)  # large enough that a context of other samples gives other scores
    return Run(path=None, config={}, task=task, base=model, duet=model, generator=generator)


# -- the stream: every row's context is its device's past, never the row itself -------------------------------------
def test_a_recommendation_rows_context_holds_only_the_items_before_it(rec_task):
    data, stream = rec_task.data, Stream.of(rec_task, "test")
    users, positions = data.splits["test"]
    assert np.array_equal(stream.devices, users)  # each user's rows in time order
    items = stream.context.fields["items"].numpy()
    assert np.array_equal(items, data.windows(users, positions, rec_task.model_cfg.context_items))
    assert np.array_equal(stream.context.fields["timestamps"].numpy(),
                          data.window_times(users, positions, rec_task.model_cfg.context_items))
    targets = data.sequence[data.offsets[users] + positions]
    assert len(np.unique(users * data.n_items + targets)) == len(targets)  # no repeated rating: an item is a sample
    assert not (items == targets[:, None]).any(), "a scored item is inside its own context"
    # and each row's context is the previous row's plus that row's item: the stream moves one sample at a time
    same_user = users[1:] == users[:-1]
    assert np.array_equal(items[1:][same_user, -1], targets[:-1][same_user])


def test_an_image_rows_context_is_the_k_images_before_it(image_task):
    stream = Stream.of(image_task, "test")
    images, _ = image_task._arrays("test")
    k = image_task.k
    context = stream.context.fields["images"][:, :, 0].numpy()
    for row in range(stream.rows):
        device, position = stream.devices[row], stream.positions[row]
        scored = stream.inputs[0][row, 0].numpy()
        assert np.array_equal(scored, images[device, k + position])
        assert np.array_equal(context[row], images[device, position : position + k])
        assert not any(np.array_equal(scored, seen) for seen in context[row]), "a scored image is in its own context"


@pytest.mark.parametrize("task_name", ["rec_task", "image_task"])
@pytest.mark.parametrize("policy", ["every-1", "every-3", "trigger"])
def test_each_sample_is_scored_with_slots_generated_from_the_context_of_a_row_not_after_it(request, task_name, policy):
    """The engine's claim, checked from outside: row r's output is the model's on r with the slots generated from the
    context of one row s of the same device at or before r (its `sources[r]`), recomputed here one row at a time."""
    task = request.getfixturevalue(task_name)
    run = _run(task)
    stream = Stream.of(task, "test")
    if policy == "trigger":
        chosen = Triggered.of(task, TriggerConfig("window", 2, 0.0), stream)
    else:
        chosen = Periodic(int(policy.split("-")[1]))
    result = refreshed_duet(task, run.duet, run.generator, stream, chosen)
    sources = result.sources
    assert (stream.devices[sources] == stream.devices).all()
    assert (stream.positions[sources] <= stream.positions).all()
    if policy == "every-1":
        assert np.array_equal(sources, np.arange(stream.rows))
    for row in range(0, stream.rows, 3):
        source = stream.rows_of(np.array([sources[row]])).context
        with torch.no_grad():
            slots = run.generator(task.context_vectors(run.duet, source), source.mask, base_slots(run.duet))
            with bound_slots(run.duet, slots):
                alone = run.duet(*stream.rows_of(np.array([row])).inputs).numpy()
        np.testing.assert_allclose(result.outputs.outputs[row], alone[0], rtol=1e-4, atol=1e-5)


def test_refreshing_changes_the_scores_and_requests_count_every_block(rec_task):
    run = _run(rec_task)
    stream = Stream.of(rec_task, "test")
    once = refreshed_duet(rec_task, run.duet, run.generator, stream, Periodic(None))
    every = refreshed_duet(rec_task, run.duet, run.generator, stream, Periodic(2))
    lengths = np.bincount(np.searchsorted(once.devices, stream.devices))
    assert np.array_equal(once.requests, np.ones(len(once.devices)))
    assert np.array_equal(every.requests, (lengths + 1) // 2)
    assert once.refreshes_per_100() == 0
    later = stream.positions >= 2
    assert not np.allclose(once.outputs.outputs[later], every.outputs.outputs[later])  # new slots, new scores
    assert np.array_equal(once.outputs.outputs[~later], every.outputs.outputs[~later])  # the first block is the same


@pytest.mark.parametrize("task_name", ["rec_task", "image_task"])
def test_once_through_the_stream_is_the_default_protocol(request, task_name):
    task = request.getfixturevalue(task_name)
    run = _run(task)
    default = split_outputs(task, run.duet, "test", run.generator)
    streamed = refreshed_duet(task, run.duet, run.generator, Stream.of(task, "test"), Periodic(None)).outputs
    np.testing.assert_allclose(streamed.outputs, default.outputs, rtol=1e-5, atol=1e-6)
    assert streamed.metrics(task) == pytest.approx(default.metrics(task), abs=1e-6)


@pytest.mark.parametrize("task_name", ["rec_task", "image_task"])
def test_fine_tuning_under_refresh_starts_from_the_once_baseline_and_learns_from_seen_samples(request, task_name):
    task = request.getfixturevalue(task_name)
    run = _run(task)
    device = int(task.devices("test")[0])
    settings = {**FINETUNE, **({"epochs": 2, "batch_size": 4} if task_name == "image_task" else {})}
    once, _ = finetune_and_score(task, run.base, device, settings)
    stream = Stream.of(task, "test", device=device)
    same = refreshed_finetune(task, run.base, stream, None, settings)
    assert np.array_equal(same.outputs.outputs, once.outputs)
    every = refreshed_finetune(task, run.base, stream, 2, settings)
    assert every.requests.tolist() == [(stream.rows + 1) // 2]
    np.testing.assert_allclose(every.outputs.outputs[:2], once.outputs[:2], rtol=1e-5, atol=1e-6)  # the same copy
    assert not np.allclose(every.outputs.outputs[2:], once.outputs[2:], rtol=1e-3, atol=1e-4)  # another one


def test_the_recommendation_fine_tuning_batches_grow_by_the_seen_test_samples(rec_task):
    device = int(rec_task.devices("test")[0])
    rows = lambda seen: sorted(int(p) for b in rec_task.finetune_batches(  # noqa: E731
        device, seen=seen, rng=np.random.default_rng(0)) for p in b.context.mask.sum(1).numpy())
    before, after = rows(0), rows(2)
    assert len(after) == len(before) + 2
    start = int(rec_task.data.test_start[device])
    assert max(after) == min(start + 1, rec_task.model_cfg.context_items)  # the second test sample's own context


# -- the trigger in evaluation ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("score", ["window", "confidence"])
def test_the_chosen_threshold_keeps_the_budget_on_validation(rec_task, score):
    run = _run(rec_task)
    val = Stream.of(rec_task, "val")
    threshold, rate = choose_threshold(rec_task, run.duet, run.generator, val, score, 3, 20.0, iterations=8)
    assert rate <= 20.0
    lower = refreshed_duet(rec_task, run.duet, run.generator, val,
                           Triggered.of(rec_task, TriggerConfig(score, 3, threshold * 0.5), val), score=False)
    assert lower.refreshes_per_100() >= rate  # a lower threshold asks at least as often


def test_the_windows_the_trigger_reads_are_the_latest_samples_features(rec_task):
    stream = Stream.of(rec_task, "test")
    windows = latest_windows(rec_task, stream, 3)
    times = stream.context.fields["timestamps"].numpy()
    assert windows[5] == [[t / 31_557_600.0] for t in times[5][times[5] > 0][-3:]]


def test_a_task_without_per_row_contexts_is_refused_with_a_clear_message(rec_task):
    from toolkit.tasks.base import Task

    class NoContexts(RecommendationTask):
        def stream(self, split, *, device=None):
            for batch in self.batches(split, device=device):
                yield Batch(batch.inputs, batch.targets, batch.devices)

    class ContractDefault(RecommendationTask):  # the default stream is `batches`, whose test rows carry no context
        stream = Task.stream

    for kind, message in ((NoContexts, "every row its own context"), (ContractDefault, "implement stream")):
        task = kind.__new__(kind)
        task.__dict__.update(rec_task.__dict__)
        with pytest.raises(TaskError, match=message):
            Stream.of(task, "test")


def test_positions_count_each_devices_rows_in_order():
    assert positions_in_device(np.array([3, 3, 1, 3, 1, 2])).tolist() == [0, 1, 0, 2, 1, 0]


# -- image devices that drift inside their test period ---------------------------------------------------------------
def test_image_drift_changes_only_held_out_images_from_its_index_on(image_task):
    config = image_task.cfg
    drifted = ImageTask(ImageTaskConfig(devices=config.devices, drift_after=9))
    for source in ("train", "val", "test"):
        same = image_task.data.images[source][:, :9] == drifted.data.images[source][:, :9]
        assert same.all(), source
        later = np.array_equal(image_task.data.images[source][:, 9:], drifted.data.images[source][:, 9:])
        assert later == (source == "train"), source
    with pytest.raises(ConfigError, match="inside the test period"):
        ImageTask(ImageTaskConfig(devices=config.devices, drift_after=2))


def test_the_confidence_trigger_never_asks_the_task_for_drift_features(rec_task, monkeypatch):
    """A task without drift features (recommendation without timestamps) can still use the confidence score."""
    def refused(samples):
        raise TaskError("no drift features here")

    monkeypatch.setattr(rec_task, "drift_features", refused)
    run = _run(rec_task)
    val = Stream.of(rec_task, "val")
    threshold, rate = choose_threshold(rec_task, run.duet, run.generator, val, "confidence", 3, 20.0, iterations=4)
    assert rate <= 20.0
    with pytest.raises(TaskError, match="no drift features here"):
        choose_threshold(rec_task, run.duet, run.generator, val, "window", 3, 20.0, iterations=4)


def test_slots_reach_their_devices_whatever_order_the_task_lists_them_in(rec_task, monkeypatch):
    run = _run(rec_task)
    ordered = split_outputs(rec_task, run.duet, "test", run.generator)
    listed = rec_task.devices("test")
    monkeypatch.setattr(rec_task, "devices", lambda split: np.asarray(listed)[::-1])
    np.testing.assert_array_equal(split_outputs(rec_task, run.duet, "test", run.generator).outputs, ordered.outputs)

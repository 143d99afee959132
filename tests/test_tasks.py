"""Both built-in tasks honour the task contract: request validation, device programs, device contexts, shifted
devices."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from toolkit.data.digits import DigitsDeviceConfig
from toolkit.data.sequences import SequenceProtocol
from toolkit.errors import RequestError
from toolkit.exporting.program import DeviceProgram
from toolkit.model.generator import GeneratorConfig, ParameterGenerator
from toolkit.model.slots import base_slots, slot_specs
from toolkit.tasks.programs import metrics_of_calls
from toolkit.training.runs import Run
from toolkit.training.serving import ServingPrograms
from toolkit.training.steps import context_dim, evaluate_split
from toolkit.tasks.image.task import ImageTask, ImageTaskConfig
from toolkit.tasks.recommendation.task import RecommendationTask, RecTaskConfig


@pytest.fixture(scope="module")
def rec_task(tmp_path_factory):
    return RecommendationTask(RecTaskConfig(protocol=SequenceProtocol(max_users=20), embed_dim=8, context_items=12),
                              tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def image_task():
    return ImageTask(ImageTaskConfig(devices=DigitsDeviceConfig(train_devices=12, test_devices=5, context_images=4,
                                                                images_per_device=10)))


def _run(task) -> Run:
    torch.manual_seed(0)
    model = task.build_model().eval()
    generator = ParameterGenerator(GeneratorConfig(context_dim=context_dim(task, model)), slot_specs(model)).eval()
    return Run(path=None, config={}, task=task, base=model, duet=model, generator=generator)


def _slots(run: Run, bodies: list[dict]) -> list[dict[str, np.ndarray]]:
    """The slots the service writes for these request bodies, one dict per body."""
    batch = ServingPrograms(run).request_slot_batch(run.task.request_inputs(bodies))
    return [{name: values[row] for name, values in batch.items()} for row in range(len(bodies))]


def test_generator_defaults_narrow_only_the_recommendation_per_item_layer_and_yield_to_the_user(rec_task, image_task):
    assert GeneratorConfig.for_task(rec_task, 9).sample_dim == 16
    chosen = GeneratorConfig.for_task(rec_task, 9, sample_dim=64, code_dim=None)  # None: not given, default stays
    assert (chosen.sample_dim, chosen.code_dim) == (64, 64)
    assert GeneratorConfig.for_task(image_task, 9).sample_dim is None  # the code width


@pytest.mark.parametrize("task_name", ["rec_task", "image_task"])
def test_example_requests_are_valid_and_give_device_specific_slots(request, task_name):
    task = request.getfixturevalue(task_name)
    run = _run(task)
    bodies = [task.example_request(0), task.example_request(1)]
    slots = _slots(run, bodies)
    assert [list(s) for s in slots] == [[spec.name for spec in slot_specs(run.duet)]] * 2
    assert not np.allclose(slots[0]["head.0.weight"], slots[1]["head.0.weight"])
    same_as_split = ServingPrograms(run).slots(task.device_context(run.duet, 0, "test"))[0]
    for name in same_as_split:
        np.testing.assert_allclose(slots[0][name], same_as_split[name], atol=1e-5)


@pytest.mark.parametrize("body,message", [
    ({"device_id": "d", "items": [], "timestamps": []}, "'items' is empty"),
    ({"device_id": "d", "items": [1, 2], "timestamps": [5]}, "'timestamps' has 1 samples but 'items' has 2"),
    ({"device_id": "d", "items": [1, 10**9], "timestamps": [1, 2]},
     r"'items\[1\]' = 1000000000 is out of range \(valid: 1\.\.\d+\)"),
    ({"device_id": "d", "items": [0, 2], "timestamps": [1, 2]}, r"'items\[0\]' = 0 is out of range"),
    ({"device_id": "d", "items": [1, "7"], "timestamps": [1, 2]}, r"'items\[1\]' must hold integers, got str"),
    ({"device_id": "d", "items": [1, True], "timestamps": [1, 2]}, r"'items\[1\]' must hold integers, got bool"),
    ({"device_id": "d", "items": list(range(1, 14)), "timestamps": list(range(13))}, "at most 12 are read"),
    ({"device_id": "d", "items": "1,2"}, "'items' must be a list of samples"),
    ({"device_id": "d", "items": [1, 2], "timestamps": [1, 2**63]}, r"'timestamps\[1\]' = \d+ is out of range"),
])
def test_recommendation_requests_are_validated(rec_task, body, message):
    with pytest.raises(RequestError, match=message):
        rec_task.request_inputs([body])


def test_a_batch_of_requests_reads_like_its_requests_one_by_one_and_names_the_bad_one(rec_task):
    import enum

    class Rating(enum.IntEnum):  # an int subclass: refused by the batch fast path, accepted by the slow one
        FIVE = 5

    bodies = [rec_task.example_request(0), {"device_id": "x", "items": [3, Rating.FIVE], "timestamps": [7, 9]},
              rec_task.example_request(1)]
    together = rec_task.request_inputs(bodies)
    for row, body in enumerate(bodies):
        alone = rec_task.request_inputs([body])
        for batch_tensor, alone_tensor in zip(together, alone):
            assert torch.equal(batch_tensor[row], alone_tensor[0])
    mask = together[-1]
    assert mask[1].sum() == 2 and mask[1, -2:].all()  # right-aligned, zero-padded on the left
    assert together[0][1, -2:].tolist() == [3, 5] and together[0][1, :-2].eq(0).all()
    bad = dict(bodies[2], items=[1] * (len(bodies[2]["items"]) - 1) + [10**9])
    with pytest.raises(RequestError, match=r"'items\[\d+\]' = 1000000000 is out of range"):
        rec_task.request_inputs([bodies[0], bad])


@pytest.mark.parametrize("context_time", [True, False])
def test_the_served_program_folds_the_first_layer_into_the_item_table_and_computes_the_same_slots(
        tmp_path_factory, context_time):
    from toolkit.training.serving import _FoldedFromRequests, _WithBase

    task = RecommendationTask(RecTaskConfig(protocol=SequenceProtocol(max_users=20), embed_dim=8, context_items=12,
                                            context_time=context_time), tmp_path_factory.mktemp("cache"))
    torch.manual_seed(0)
    model = task.build_model().eval()
    generator = ParameterGenerator(GeneratorConfig(context_dim=context_dim(task, model), sample_dim=5),
                                   slot_specs(model)).eval()
    run = Run(path=None, config={}, task=task, base=model, duet=model, generator=generator)
    inputs = task.request_inputs([task.example_request(d) for d in range(5)])
    samples = task.context(range(5), "test")
    ids, rest = task.context_parts(model, samples)  # the contract: vectors = cat([table[ids], rest])
    vectors = task.context_vectors(model, samples)
    torch.testing.assert_close(vectors, torch.cat([task.context_table(model)[ids], rest], -1))
    assert torch.equal(inputs[-1], samples.mask) and rest.shape[-1] == (3 if context_time else 0)
    with torch.no_grad():
        expected = generator(vectors, samples.mask, base_slots(model))
        folded = _FoldedFromRequests(task, model, _WithBase(generator, base_slots(model))).eval()(*inputs)
        programs = ServingPrograms(run)
        served = programs.pipeline(*inputs)
    assert isinstance(programs.pipeline, torch.jit.ScriptModule)  # traced, not the eager fallback
    for want, got_eager, got_served in zip(expected, folded, served):
        torch.testing.assert_close(got_eager, want, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(got_served, want, atol=1e-5, rtol=1e-5)


def test_a_traced_program_that_differs_from_its_reference_is_not_served():
    from toolkit.training.serving import _traced

    class Scaled(torch.nn.Module):
        def __init__(self, factor: float):
            super().__init__()
            self.factor = factor

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
            return (x * self.factor,)

    reference, wrong = Scaled(1.0).eval(), Scaled(1.5).eval()
    example, checks = (torch.ones(2, 3),), [(torch.ones(1, 3),)]
    assert _traced(wrong, example, checks, "program", reference=reference) is reference
    assert isinstance(_traced(reference, example, checks, "program"), torch.jit.ScriptModule)


@pytest.mark.parametrize("images,message", [
    ([], "'images' is empty"),
    ([[0.5] * 63], r"'images\[0\]' must be a list of 64 numbers"),
    ([[2.0] * 64], r"'images\[0\]' = a value is out of range \(valid: 0\.\.1\)"),
    ([[float("nan")] * 64], r"'images\[0\]' = a value is out of range"),
    ([["x"] * 64], "must hold numbers, got str"),
    ([[0.1] * 64] * 5, "at most 4 are read"),
])
def test_image_requests_are_validated(image_task, images, message):
    with pytest.raises(RequestError, match=message):
        image_task.request_inputs([{"device_id": "d", "images": images}])


@pytest.mark.parametrize("task_name", ["rec_task", "image_task"])
def test_device_program_matches_the_cloud_model_with_the_same_slots(request, task_name):
    task = request.getfixturevalue(task_name)
    run = _run(task)
    device_model = DeviceProgram.of(task, run.duet, task.export_shape_defaults())
    inputs = device_model.example_inputs(seed=3)
    assert [tuple(x.shape) for x in inputs] == [spec.shape for spec in device_model.input_specs]
    slots = ServingPrograms(run).slots(task.device_context(run.duet, 1, "test"))[0]
    out = device_model.run(inputs, slots)
    assert out.shape == device_model.output_spec.shape
    changed = {k: v * 1.5 for k, v in slots.items()}
    assert not np.allclose(out, device_model.run(inputs, changed))


@pytest.mark.parametrize("task_name", ["rec_task", "image_task"])
def test_device_eval_calls_reproduce_the_eager_metrics(request, task_name):
    task = request.getfixturevalue(task_name)
    run = _run(task)
    shape = task.export_shape_defaults()
    device_model = DeviceProgram.of(task, run.duet, shape)
    calls, slots, programs = [], {}, ServingPrograms(run)
    for device, inputs, labels in task.program_calls("test", shape):
        if device not in slots:
            slots[device] = programs.slots(task.device_context(run.duet, device, "test"))[0]
        calls.append((device, labels, device_model.run(tuple(torch.from_numpy(x) for x in inputs), slots[device])))
    from_calls = metrics_of_calls(task, calls)
    eager = evaluate_split(task, run.duet, "test", run.generator)
    assert set(from_calls) == set(eager)
    for key in list(eager)[:2]:
        assert from_calls[key] == pytest.approx(eager[key], abs=1e-6)


@pytest.mark.parametrize("task_name", ["rec_task", "image_task"])
def test_shifted_devices_are_a_quarter_of_the_test_devices(request, task_name):
    task = request.getfixturevalue(task_name)
    chosen = task.shifted_devices(0.25)
    devices = task.devices("test")
    assert len(chosen) == max(1, round(len(devices) * 0.25))
    assert set(chosen) <= set(devices.tolist())
    assert set(task.shifted_devices(0.5)) >= set(chosen)  # the most shifted quarter lies within the top half
    if task_name == "image_task":  # the definition restated: distance of a device's mean image from training's
        images, _ = task._arrays("test")
        shift = np.linalg.norm((images.mean(axis=1) - task.data.images["train"].mean(axis=(0, 1)))
                               .reshape(len(images), -1), axis=1)
        others = np.setdiff1d(np.arange(len(images)), chosen)
        assert shift[chosen].min() >= shift[others].max()


def _device_set(images: np.ndarray) -> set[bytes]:
    return {device.tobytes() for device in images}


def test_image_training_draws_new_devices_every_epoch_and_fixed_mode_revisits_the_same():
    devices = DigitsDeviceConfig(train_devices=6, test_devices=2, val_devices=3, context_images=4, images_per_device=10)
    fresh = ImageTask(ImageTaskConfig(devices=devices))
    fixed = ImageTask(ImageTaskConfig(devices=devices, fresh_devices=False))
    rng = np.random.default_rng(0)

    def epoch(task):  # the devices of one epoch, each image set sorted so the in-episode shuffle does not matter
        return {np.sort(b.inputs[0].numpy().reshape(b.rows, 10, -1), axis=1).tobytes()
                for b in task.batches("train", rng=rng, batch_size=10)}

    first, second = epoch(fresh), epoch(fresh)
    assert len(first) == 6 * fresh.cfg.episodes_per_epoch and not first & second
    fixed_devices = {np.sort(d.reshape(10, -1), axis=0).tobytes() for d in fixed.data.images["train"]}
    assert epoch(fixed) == epoch(fixed) == fixed_devices
    # validation devices are separate devices; the held-out test devices are the same in both modes
    assert fresh.data.images["val"].shape[0] == 3 and not _device_set(fresh.data.images["val"]) & _device_set(
        fresh.data.images["train"])
    assert np.array_equal(fresh.data.images["test"], fixed.data.images["test"])


def test_image_runs_made_before_val_devices_load_with_their_splits_and_simulation():
    saved = ImageTaskConfig(devices=DigitsDeviceConfig(train_devices=20, test_devices=2, context_images=4,
                                                       images_per_device=10))
    old = ImageTask(saved).config_json()
    del old["fresh_devices"], old["devices"]["val_devices"]
    task = ImageTask.from_config_json(old)
    assert task.cfg.fresh_devices is False and task.cfg.devices.val_devices == 0
    assert len(task.devices("train")) == 18 and len(task.devices("val")) == 2  # the last tenth, as before
    assert task.cfg.devices.simulation_version == 1  # their devices are drawn as they were
    # a run saved with val_devices but before simulation_version: the same Base signature as a current one
    current = ImageTask(saved).config_json()
    del current["devices"]["simulation_version"]
    assert ImageTask.base_signature_of(current) == ImageTask.base_signature_of(
        json.loads(json.dumps(ImageTask(saved).config_json())))

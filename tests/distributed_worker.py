"""One data-parallel training step per batch, run under torchrun by tests/test_distributed.py; every rank saves its
gradients (`torchrun --nproc_per_node 2 tests/distributed_worker.py CACHE_DIR OUT_DIR`)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from toolkit.training.distributed import SINGLE, World, process_group, world_from_env
from toolkit.training.train import train_step

ROWS = 7  # one batch of 7 rows (shards of 3 and 4 on two ranks) and one of 1 row (an empty shard on rank 0)


def tiny(cache_dir: Path):
    """A 12-user recommendation task, its seeded model and generator in eval mode (no dropout: the step is then a
    function of the rows alone) and the batches to step on."""
    from toolkit.data.sequences import SequenceProtocol
    from toolkit.model.generator import GeneratorConfig, ParameterGenerator
    from toolkit.model.slots import slot_specs
    from toolkit.training.steps import context_dim
    from toolkit.tasks.recommendation.task import RecommendationTask, RecTaskConfig

    task = RecommendationTask(RecTaskConfig(protocol=SequenceProtocol(max_users=12, max_len=8, eval_negatives=9),
                                            embed_dim=8, context_items=10), cache_dir)
    torch.manual_seed(0)
    model = task.build_model().eval()
    generator = ParameterGenerator(GeneratorConfig(context_dim=context_dim(task, model)), slot_specs(model)).eval()
    batch = next(iter(task.batches("train", rng=np.random.default_rng(0), batch_size=ROWS)))
    return task, model, generator, [batch, batch.slice(0, 1)]


def step_gradients(cache_dir: Path, world: World = SINGLE) -> dict[str, dict[str, torch.Tensor]]:
    """{"<batch>-<base|duet>": the loss and every parameter's gradient after one `train_step`}, without and with the
    generator (the Base and the DUET stage) on each batch."""
    task, model, generator, batches = tiny(cache_dir)
    found = {}
    for index, batch in enumerate(batches):
        for stage, gen in (("base", None), ("duet", generator)):
            modules = {"model": model} if gen is None else {"model": model, "generator": gen}
            optimizer = torch.optim.Adam([p for m in modules.values() for p in m.parameters()])
            loss = train_step(task, model, gen, batch, optimizer, world)
            found[f"{index}-{stage}"] = {"loss": torch.tensor([loss]), **{
                f"{prefix}.{name}": p.grad.clone() for prefix, module in modules.items()
                for name, p in module.named_parameters() if p.grad is not None}}
    return found


if __name__ == "__main__":
    cache, out = Path(sys.argv[1]), Path(sys.argv[2])
    world = world_from_env()
    with process_group(world, torch.device("cpu")):
        for key, tensors in step_gradients(cache, world).items():
            save_file(tensors, out / f"rank{world.rank}-{key}.safetensors")

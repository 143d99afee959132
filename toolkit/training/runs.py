"""Run directories: config.json, base.safetensors, duet.safetensors, train_log.jsonl; written and rebuilt here."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save
from torch import nn

from toolkit import __version__
from toolkit.artifacts import read_small_file, strict_json, write_json
from toolkit.errors import ConfigError, DuetError, one_line
from toolkit.model.generator import GeneratorConfig, ParameterGenerator
from toolkit.model.slots import slot_config, slot_specs
from toolkit.tasks.base import Task
from toolkit.tasks.loading import import_root, task_class


CONFIG_FILE, BASE_WEIGHTS, DUET_WEIGHTS, LOG_FILE = "config.json", "base.safetensors", "duet.safetensors", "train_log.jsonl"
METRICS_FILE, SHIFTED_FILE, EVALUATION_FILE = "metrics.json", "metrics_shifted.json", "evaluation.json"  # by evaluate
REFRESH_FILE, TRIGGER_FILE = "refresh.json", "trigger.json"  # by evaluate --refresh-every K / --refresh trigger
METHODS = ("base", "finetune", "duet")  # the methods evaluate scores and report compares, in that order
RUN_FORMAT = 1
MODEL_PREFIX, GENERATOR_PREFIX = "model.", "generator."  # duet.safetensors: the DUET model's and the generator's weights


@dataclass
class Run:
    """A trained run: its task, the Base model, the DUET model and its generator."""

    path: Path
    config: dict[str, Any]
    task: Task
    base: nn.Module
    duet: nn.Module
    generator: ParameterGenerator

    @property
    def name(self) -> str:
        return self.path.name


def run_config(task: Task, model: nn.Module, gen_cfg: GeneratorConfig, train_cfg: Any) -> dict[str, Any]:
    """config.json of a run; `train_cfg` is the trainer's TrainConfig (a dataclass; the trainer is a later stage);
    "slots" records the model's SlotConfig (what personalize chose), as PEFT saves its adapter's config."""
    return {"format": RUN_FORMAT, "toolkit_version": __version__, "task": task.name,
            "task_path": import_root(type(task)), "task_config": task.config_json(),
            "selection_metric": task.selection_metric,
            "slots": slot_config(model).to_json(),
            "generator": asdict(gen_cfg), "train": asdict(train_cfg)}


def save_run(path: Path, config: dict, base: nn.Module, duet: nn.Module, generator: nn.Module) -> None:
    """Write weights first, then config.json, so a directory with a config always has its weights."""
    path.mkdir(parents=True, exist_ok=True)
    (path / BASE_WEIGHTS).write_bytes(save(_contiguous(base.state_dict())))  # the umask's mode, like config.json
    duet_state = {f"{MODEL_PREFIX}{k}": v for k, v in duet.state_dict().items()}
    duet_state.update({f"{GENERATOR_PREFIX}{k}": v for k, v in generator.state_dict().items()})
    (path / DUET_WEIGHTS).write_bytes(save(_contiguous(duet_state)))
    write_json(path / CONFIG_FILE, config)


def _contiguous(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().clone() for k, v in state.items()}


def check_new_run_dir(path: Path) -> None:
    """ConfigError unless `path` can become a new run: absent, or an empty directory (nothing there is overwritten)."""
    path = Path(path)
    if (path / CONFIG_FILE).exists():
        raise ConfigError(f"{path} already holds a run; choose another --out or delete it")
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ConfigError(f"{path} exists and is not an empty directory; choose another --out")


def read_config(path: Path) -> dict[str, Any]:
    config_file = Path(path) / CONFIG_FILE
    if not config_file.exists():
        raise ConfigError(f"{path} is not a run directory: {CONFIG_FILE} is missing (train one with `cli.py train`)")
    try:
        config = strict_json(read_small_file(config_file))
    except OSError as err:  # a directory, unreadable, /dev/zero
        raise ConfigError(f"{config_file}: cannot read it ({err.strerror or err})") from err
    except ValueError as err:  # not UTF-8, not JSON, NaN or Infinity, a number beyond float or int range
        raise ConfigError(f"{config_file}: not valid JSON ({one_line(err, 160)})") from err
    except RecursionError as err:
        raise ConfigError(f"{config_file}: not a run's config (JSON nested too deeply to read)") from err
    if not isinstance(config, dict):
        raise ConfigError(f"{config_file}: a run's config is a JSON object, found {type(config).__name__}")
    if not isinstance(config.get("task"), str) or not config["task"]:
        raise ConfigError(f"{config_file}: 'task' must name the run's task (a name or an import path)")
    for key in ("task_config", "generator"):
        if not isinstance(config.get(key), dict):
            raise ConfigError(f"{config_file}: '{key}' must be a JSON object (was this written by `cli.py train`?)")
    return config


def _weights(path: Path, name: str) -> dict[str, torch.Tensor]:
    """A run's weights file, or ConfigError naming it (missing, truncated, not safetensors)."""
    from safetensors import SafetensorError

    try:
        return load_file(str(path / name))
    except FileNotFoundError as err:
        raise ConfigError(f"{path / name} is missing") from err
    except (SafetensorError, OSError, RuntimeError, ValueError) as err:
        raise ConfigError(f"{path / name} is not a readable safetensors file (truncated or corrupt?): "
                          f"{one_line(err)}") from err


def _rebuilt(config_file: Path, build):
    """What `build` makes from a config; a config it cannot build from is a ConfigError naming the file."""
    try:
        return build()
    except ConfigError as err:
        raise ConfigError(f"{config_file}: {one_line(err)}") from err
    except DuetError as err:  # e.g. the data its settings select is unusable: said with the config that selects it
        raise type(err)(f"{config_file}: {one_line(err)}") from err
    except (KeyError, TypeError, ValueError, AssertionError, RuntimeError, OverflowError) as err:
        raise ConfigError(f"{config_file}: cannot rebuild the run from it ({type(err).__name__}: "
                          f"{one_line(err)})") from err


def load_base(path: Path, task: Task) -> nn.Module:
    """The Base model of an earlier run, checked to belong to the same task, data and architecture."""
    config = read_config(path)
    if config["task"] != task.name:
        raise ConfigError(f"{path}: its Base is for the {config['task']} task, not {task.name}")
    theirs = _rebuilt(Path(path) / CONFIG_FILE, lambda: type(task).base_signature_of(config["task_config"]))
    ours = type(task).base_signature_of(json.loads(json.dumps(task.config_json())))  # tuples as saved: lists
    if theirs != ours:
        differing = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
        raise ConfigError(f"{path}: its Base was trained on other data or another architecture ({differing} differ)")
    base = task.build_model()
    try:
        base.load_state_dict(_weights(Path(path), BASE_WEIGHTS))
    except RuntimeError as err:
        raise ConfigError(f"{Path(path) / BASE_WEIGHTS}: does not match {CONFIG_FILE} ({one_line(err)})") from err
    return base


def without_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The weights of `state` whose names start with `prefix`, named without it (one module's part of a file)."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def load_run(path: str | Path, cache_dir: Path | None = None) -> Run:
    """Rebuild task, models and generator from a run directory."""
    path = Path(path)
    config = read_config(path)
    config_file = path / CONFIG_FILE
    search = config.get("task_path") if isinstance(config.get("task_path"), str) else None
    task = _rebuilt(config_file, lambda: task_class(config["task"], search).from_config_json(config["task_config"],
                                                                                              cache_dir))
    base, duet = _rebuilt(config_file, task.build_model), _rebuilt(config_file, task.build_model)
    if "slots" in config and config["slots"] != slot_config(duet).to_json():
        raise ConfigError(f"{config_file}: the run's slots {config['slots']} are not those the task's model names now "
                          f"{slot_config(duet).to_json()}")
    generator = _rebuilt(config_file, lambda: ParameterGenerator(GeneratorConfig(**config["generator"]),
                                                                 slot_specs(duet)))
    base_state, state = _weights(path, BASE_WEIGHTS), _weights(path, DUET_WEIGHTS)
    parts = ((BASE_WEIGHTS, base, base_state),
             (DUET_WEIGHTS, duet, without_prefix(state, MODEL_PREFIX)),
             (DUET_WEIGHTS, generator, without_prefix(state, GENERATOR_PREFIX)))
    for name, module, weights in parts:
        try:
            module.load_state_dict(weights)
        except RuntimeError as err:
            raise ConfigError(f"{path / name}: does not match {CONFIG_FILE} ({one_line(err)})") from err
    for module in (base, duet, generator):
        module.eval()
    return Run(path, config, task, base, duet, generator)

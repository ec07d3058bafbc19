"""Windows, the retrieval memory, F2A training and prediction.

A window starting at ``s`` reads the context ``[s, s + L)`` and predicts ``[s + L, s + L + h)``.
Windows are gathered from one tensor of the series on the fly (a copy of every window of a
25-channel SMAP series would take gigabytes).

The retrieval memory holds training windows every ``h`` steps with what followed them. While
training, a window never retrieves a memory window that overlaps it in time: its nearest
neighbour would otherwise be itself shifted by one step, whose future is its own, and the
model would learn to copy an answer it never has at test time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from pydantic import BaseModel

from anomalygraph.core.errors import DataError
from anomalygraph.core.stats import median_scale
from anomalygraph.detectors.deep.runtime import BestState, gather_windows
from anomalygraph.detectors.f2a.config import F2AConfig
from anomalygraph.detectors.f2a.model import F2ANet, focal_loss, weighted_mae
from anomalygraph.detectors.f2a.retrieval import RetrievalConfig, WindowIndex

QUANTILE_GRID = np.round(np.linspace(0.01, 0.99, 99), 2)


class EpochRecord(BaseModel):
    epoch: int
    train_loss: float
    val_loss: float
    seconds: float


class F2ATrainingReport(BaseModel):
    stage: str  # "encoder" (no pretrained weights) or "f2a"
    epochs: list[EpochRecord]
    best_epoch: int
    n_train_windows: int
    n_val_windows: int
    stopped_early: bool


def gather(values: torch.Tensor, starts: np.ndarray, length: int) -> torch.Tensor:
    """Windows ``[B, length, C]`` of ``values [T, C]`` starting at the numpy ``starts``."""
    return gather_windows(values, torch.as_tensor(starts, device=values.device), length)


def window_starts(n_rows: int, config: F2AConfig, *, stride: int | None = None, limit: int | None = None) -> np.ndarray:
    """Starts of every full context + horizon window in ``n_rows``, evenly thinned to ``limit``."""
    span = config.context_length + config.horizon
    if n_rows < span:
        raise DataError(f"F2A needs at least {span} training rows (context {config.context_length} + horizon "
                        f"{config.horizon}), got {n_rows}")
    starts = np.arange(0, n_rows - span + 1, stride or config.stride)
    if limit is not None and len(starts) > limit:
        starts = starts[np.linspace(0, len(starts) - 1, limit).round().astype(int)]
    return starts


@dataclass
class Memory:
    """Training windows every ``h`` steps: embeddings (the index), scaled futures and their labels."""

    starts: np.ndarray  # [M]
    embeddings: np.ndarray  # [M, E] float32
    futures: np.ndarray  # [M, h, C] float32, in each window's own scaled units
    labels: np.ndarray  # [M, h] int8
    index: WindowIndex
    distance_scale: float = 1.0  # median squared distance of a memory window to its nearest other one

    def neighbours(self, queries: np.ndarray, k: int, device: torch.device, *, query_starts: np.ndarray | None = None,
                   span: int = 0) -> tuple[dict[str, torch.Tensor], np.ndarray]:
        """The ``k`` nearest memory windows of each query embedding, as tensors for :class:`RetrievalFusion`, and their ids.

        With ``query_starts``, memory windows starting within ``span`` of a query are never returned.
        """
        k = min(k, len(self.starts))
        extra = 0 if query_starts is None else int(np.ceil(2 * span / max(1, self._stride()))) + 2
        dist, ids = self.index.search(queries.astype(np.float32), min(len(self.starts), k + extra))
        if query_starts is not None:
            far = np.abs(self.starts[np.clip(ids, 0, None)] - query_starts[:, None]) >= span
            keep = far & (ids >= 0)
        else:
            keep = ids >= 0
        chosen = np.zeros((len(queries), k), dtype=np.int64)
        d = np.zeros((len(queries), k), dtype=np.float32)
        valid = np.zeros((len(queries), k), dtype=bool)
        for row in range(len(queries)):
            mine = np.flatnonzero(keep[row])[:k]
            chosen[row, : len(mine)] = ids[row, mine]
            d[row, : len(mine)] = dist[row, mine]
            valid[row, : len(mine)] = True
        # a query without enough far neighbours repeats its farthest valid one (or gets zeros): rare, short series only
        futures = self.futures[chosen] * valid[..., None, None]
        labels = self.labels[chosen] * valid[..., None]
        return ({
            "keys": torch.as_tensor(self.embeddings[chosen], device=device),
            "distances": torch.as_tensor(d / self.distance_scale, device=device),
            "futures": torch.as_tensor(futures, device=device),
            "labels": torch.as_tensor(labels.astype(np.float32), device=device),
        }, np.where(valid, chosen, -1))

    def _stride(self) -> int:
        return int(np.median(np.diff(self.starts))) if len(self.starts) > 1 else 1


@torch.no_grad()
def embed_windows(net: F2ANet, values: torch.Tensor, starts: np.ndarray, length: int, batch: int = 256
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frozen-encoder embeddings ``[N, E]`` and each window's loc / scale ``[N, 1, C]``."""
    net.eval()
    embs, locs, scales = [], [], []
    for i in range(0, len(starts), batch):
        hidden, _, loc, scale = net.backbone.encode_parts(gather(values, starts[i : i + batch], length))
        embs.append(net.backbone.embed(hidden).float().cpu().numpy())
        locs.append(loc.cpu().numpy())
        scales.append(scale.cpu().numpy())
    return np.concatenate(embs), np.concatenate(locs), np.concatenate(scales)


@torch.no_grad()
def encode_windows(net: F2ANet, values: torch.Tensor, starts: np.ndarray, length: int, batch: int = 256
                   ) -> tuple[torch.Tensor, ...]:
    """The frozen encoder's outputs (hidden, patches, loc, scale) of every window, concatenated."""
    net.eval()
    parts = [net.backbone.encode_parts(gather(values, starts[i : i + batch], length)) for i in range(0, len(starts), batch)]
    return tuple(torch.cat(column) for column in zip(*parts, strict=True))


def encoder_cache_bytes(net: F2ANet, n_windows: int, n_channels: int, config: F2AConfig) -> int:
    """Bytes :func:`encode_windows` takes for ``n_windows`` windows: hidden and patch tensors in float32."""
    patches = config.context_length // config.patch_length
    return 4 * n_windows * n_channels * patches * (net.backbone.d_model + config.patch_length)


def build_memory(net: F2ANet, values: torch.Tensor, labels: np.ndarray, config: F2AConfig,
                 starts: np.ndarray | None = None) -> Memory:
    """The retrieval memory over the training rows ``values [T, C]`` with their (pseudo-)labels.

    ``starts`` defaults to a window every ``h`` steps; a corpus of separate windows passes its own.
    """
    L, h = config.context_length, config.horizon
    starts = window_starts(len(values), config, stride=h) if starts is None else starts
    emb, loc, scale = embed_windows(net, values, starts, L)
    future = gather(values, starts + L, h).cpu().numpy()
    futures = ((future - loc) / scale).astype(np.float32)
    future_labels = labels[(starts + L)[:, None] + np.arange(h)[None]].astype(np.int8)
    emb = emb.astype(np.float32)
    return Memory(starts, emb, futures, future_labels, WindowIndex.build(emb, RetrievalConfig()), distance_scale(emb))


def distance_scale(embeddings: np.ndarray) -> float:
    """Median squared l2 distance from each memory window to its nearest other one: the unit of retrieval distances.

    Fixed per memory, so a window's fused neighbours never depend on which other windows share its batch.
    """
    if len(embeddings) < 2:
        return 1.0
    index = WindowIndex.build(embeddings, RetrievalConfig())
    dist, _ = index.search(embeddings, 2)
    value = float(np.median(dist[:, 1]))
    return value if value > 0 else 1.0


def _batches(n: int, size: int, rng: np.random.Generator | None) -> Iterator[np.ndarray]:
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for i in range(0, n, size):
        yield order[i : i + size]


def _loss(net: F2ANet, x: torch.Tensor, y: torch.Tensor, lab: torch.Tensor, nbrs: dict[str, torch.Tensor] | None,
          config: F2AConfig, *, stage: str, encoded: tuple[torch.Tensor, ...] | None = None) -> torch.Tensor:
    if stage == "encoder":  # self-supervised forecasting, all of TTM trained: the backbone's own loss
        return net.backbone.backbone_loss(torch.cat([x, y], dim=1))
    fc, logits, loc, scale = net(x, nbrs) if encoded is None else net.head(x, encoded, nbrs)
    parts = []
    if config.loss in ("joint", "wmae"):
        parts.append(config.forecast_weight * weighted_mae(fc, (y - loc) / scale, lab, config.anomaly_weight))
    if config.loss in ("joint", "focal"):
        parts.append(focal_loss(logits, lab, config.focal_gamma, config.focal_alpha))
    return torch.stack(parts).sum()


def split_starts(n_rows: int, config: F2AConfig) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation window starts of one series: the last windows validate, none overlapping training."""
    L, h = config.context_length, config.horizon
    starts = window_starts(n_rows, config, limit=config.max_windows)
    n_val = max(1, round(len(starts) * config.validation_fraction))
    train_starts = starts[: len(starts) - n_val]
    train_starts = train_starts[train_starts + L + h <= starts[len(starts) - n_val]] if n_val < len(starts) else train_starts
    val_starts = starts[len(starts) - n_val :]
    return (train_starts if len(train_starts) else val_starts), val_starts


def train(net: F2ANet, values: torch.Tensor, labels: np.ndarray, config: F2AConfig, memory: Memory | None, *,
          stage: str, epochs: int, starts: tuple[np.ndarray, np.ndarray] | None = None, span: int | None = None,
          progress: Callable[[EpochRecord], None] | None = None) -> F2ATrainingReport:
    """Adam on the trainable parameters with early stopping on held-out windows; the best state is kept.

    ``starts`` (training, validation) default to :func:`split_starts` of the series. A window never
    retrieves a memory window starting within ``span`` rows of it (default: context + horizon, the
    windows that overlap it).
    """
    L, h = config.context_length, config.horizon
    device = values.device
    train_starts, val_starts = starts if starts is not None else split_starts(len(values), config)
    lab = torch.as_tensor(labels.astype(np.float32), device=device)
    rng = np.random.default_rng(config.seed)

    # the encoder is frozen in the F2A stage: its outputs (when they fit in encoder_cache_mb) and every
    # window's neighbours are computed once, before the epochs
    found: dict[str, torch.Tensor] | None = None
    cache: tuple[torch.Tensor, ...] | None = None
    every = np.concatenate([train_starts, val_starts])
    row_of = {int(s): i for i, s in enumerate(every)}
    if stage != "encoder":
        if encoder_cache_bytes(net, len(every), values.shape[1], config) <= config.encoder_cache_mb * 2**20:
            cache = encode_windows(net, values, every, L)
        if memory is not None and config.rag_k:
            with torch.no_grad():
                emb = (net.backbone.embed(cache[0]).float().cpu().numpy() if cache is not None
                       else embed_windows(net, values, every, L)[0])
            found, _ = memory.neighbours(emb, config.rag_k, device, query_starts=every, span=span or L + h)

    def rows_of(batch: np.ndarray) -> torch.Tensor:
        return torch.as_tensor([row_of[int(s)] for s in batch], device=device)

    def neighbours_of(batch: np.ndarray) -> dict[str, torch.Tensor] | None:
        return None if found is None else {key: value[rows_of(batch)] for key, value in found.items()}

    def encoded_of(batch: np.ndarray) -> tuple[torch.Tensor, ...] | None:
        return None if cache is None else tuple(part[rows_of(batch)] for part in cache)

    params = [p for p in net.parameters() if p.requires_grad]
    optimiser = torch.optim.Adam(params, lr=config.lr)
    keeper, records, stopped = BestState(net, config.patience, 1e-6), [], False
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        net.train()
        total, count = 0.0, 0
        for idx in _batches(len(train_starts), config.batch_size, rng):
            batch = train_starts[idx]
            nbrs = neighbours_of(batch)
            loss = _loss(net, gather(values, batch, L), gather(values, batch + L, h), lab[(batch + L)[:, None] + np.arange(h)],
                         nbrs, config, stage=stage, encoded=encoded_of(batch))
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimiser.step()
            total += float(loss.detach()) * len(batch)
            count += len(batch)
        net.eval()
        with torch.no_grad():
            val_total = 0.0
            for idx in _batches(len(val_starts), config.batch_size, None):
                batch = val_starts[idx]
                val_total += float(_loss(net, gather(values, batch, L), gather(values, batch + L, h),
                                         lab[(batch + L)[:, None] + np.arange(h)], neighbours_of(batch), config,
                                         stage=stage, encoded=encoded_of(batch))) * len(batch)
        val = val_total / len(val_starts)
        records.append(EpochRecord(epoch=epoch, train_loss=total / max(1, count), val_loss=val,
                                   seconds=round(time.perf_counter() - started, 2)))
        if progress is not None:
            progress(records[-1])
        if keeper.update(epoch, val):
            stopped = True
            break
    keeper.restore()
    net.eval()
    return F2ATrainingReport(stage=stage, epochs=records, best_epoch=keeper.epoch, n_train_windows=len(train_starts),
                             n_val_windows=len(val_starts), stopped_early=stopped)


@dataclass
class Prediction:
    """What the model says at each issue time ``t = s + L``: the next ``h`` steps' anomaly probability and forecast."""

    issued: np.ndarray  # [n] first predicted row of each window
    probability: np.ndarray  # [n, h]
    forecast: np.ndarray  # [n, h, C] in the series' units
    scale: np.ndarray  # [n, 1, C] each context's scale (for forecast intervals)
    neighbours: np.ndarray | None  # [n, k] memory ids retrieved (-1: none)
    distances: np.ndarray | None = None  # [n, k] their squared l2 distances, in the memory's distance_scale


@torch.no_grad()
def predict(net: F2ANet, values: torch.Tensor, memory: Memory | None, config: F2AConfig, *, starts: np.ndarray | None = None,
            batch: int = 256) -> Prediction:
    """Every window whose context fits: probabilities, forecasts and the neighbours it used."""
    L = config.context_length
    if starts is None:
        starts = np.arange(0, len(values) - L + 1)
    net.eval()
    probs, fcs, scales, nbr_ids, nbr_dist = [], [], [], [], []
    for i in range(0, len(starts), batch):
        s = starts[i : i + batch]
        x = gather(values, s, L)
        encoded = net.backbone.encode_parts(x)
        nbrs = None
        if memory is not None and config.rag_k > 0:
            emb = net.backbone.embed(encoded[0]).float().cpu().numpy()
            nbrs, ids = memory.neighbours(emb, config.rag_k, values.device)
            nbr_ids.append(ids)
            nbr_dist.append(nbrs["distances"].cpu().numpy())
        fc, logits, loc, scale = net.head(x, encoded, nbrs)
        probs.append(torch.sigmoid(logits).float().cpu().numpy())
        fcs.append((fc * scale + loc).float().cpu().numpy())
        scales.append(scale.float().cpu().numpy())
    return Prediction(issued=starts + L, probability=np.concatenate(probs), forecast=np.concatenate(fcs),
                      scale=np.concatenate(scales), neighbours=np.concatenate(nbr_ids) if nbr_ids else None,
                      distances=np.concatenate(nbr_dist) if nbr_dist else None)


def _mean_per_row(issued: np.ndarray, per_step: np.ndarray, length: int) -> np.ndarray:
    """Each row's mean of ``per_step [n, h]`` over the windows whose horizon covers it (0 where none does).

    Not :func:`anomalygraph.data.windows.windows_to_scores`: the first rows are covered by no
    window and the last windows reach past the end, both of which it rightly refuses.
    """
    rows = (issued[:, None] + np.arange(per_step.shape[1])[None]).ravel()
    ok = rows < length
    total = np.bincount(rows[ok], weights=per_step.ravel()[ok], minlength=length)
    count = np.bincount(rows[ok], minlength=length)
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)


def per_timestamp(prediction: Prediction, length: int) -> np.ndarray:
    """Score of each row: the mean probability the earlier windows gave it (0 before the first prediction)."""
    return _mean_per_row(prediction.issued, prediction.probability, length)


def residual_per_timestamp(prediction: Prediction, values: np.ndarray) -> np.ndarray:
    """The forecasting-error baseline: each row's mean ``|forecast - value| / scale`` over the windows that forecast it."""
    length, h = len(values), prediction.forecast.shape[1]
    rows = np.minimum(prediction.issued[:, None] + np.arange(h)[None], length - 1)  # past the end: dropped below
    error = (np.abs(prediction.forecast - values[rows]) / prediction.scale).mean(axis=2)  # [n, h]
    return _mean_per_row(prediction.issued, error, length)


def held_out_fit(net: F2ANet, values: torch.Tensor, memory: Memory | None, config: F2AConfig
                 ) -> tuple[np.ndarray, np.ndarray]:
    """From the last training windows (held out of training): residual quantiles and the score reference.

    * ``[99, h]`` quantiles of the scaled forecast residuals (split-conformal intervals);
    * ``[2, 2]`` robust centre and scale of the logit of the predicted probability and of the
      scaled absolute forecast error (each step, mean over channels): what the ``joint`` score
      measures a row against, so its two parts are in the same units.
    """
    L, h = config.context_length, config.horizon
    _, held = split_starts(len(values), config)
    pred = predict(net, values, memory, config, starts=held)
    truth = gather(values, held + L, h).cpu().numpy()
    residual = (truth - pred.forecast) / pred.scale  # [n, h, C]
    quantiles = np.quantile(residual.transpose(0, 2, 1).reshape(-1, h), QUANTILE_GRID, axis=0).astype(np.float32)
    reference = np.array([median_scale(logit(pred.probability).ravel()),
                          median_scale(np.abs(residual).mean(axis=2).ravel())], dtype=np.float64)
    return quantiles, reference


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(p) - np.log1p(-p)

"""The post-training loop: ``L_post = L_rec + lambda * InfoNCE`` on sampled (x, A(x), G(x)) batches.

Early stopping watches ``L_post`` on fixed batches drawn once from the last training rows (pseudo-
anomalies only: no test label is ever seen), and the best epoch's weights are restored. The report
measures what the loss is meant to change, before and after, on those validation batches: the
cosine similarity of ``z_raw`` to ``z_aug`` and to ``z_pa``, and how well the backbone's own score
separates ``G(x)`` from ``x`` (the pseudo-AUC).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict
from sklearn.metrics import roc_auc_score
from torch import Tensor

from anomalygraph.core.errors import ConfigError
from anomalygraph.core.thresholds import percentile_threshold
from anomalygraph.detectors.ape.config import APEConfig
from anomalygraph.detectors.ape.loss import info_nce
from anomalygraph.detectors.deep.runtime import BestState, rng_devices, torch_threads


class PairBatch(Protocol):
    x_raw: np.ndarray  # [B, L, D] normal windows, in the series' units
    x_aug: np.ndarray | None  # A(x)
    x_pa: np.ndarray  # G(x; tau, phi)


class PairSource(Protocol):
    """Where pseudo-anomalies come from: the PAG sampler over a bank, or NCAD-style outlier exposure."""

    def sample(self, n: int, *, with_augmented: bool = False) -> Any: ...


class PostTrainable(Protocol):
    """A fitted backbone detector with the Encoder contract (``DeepDetector``, the Anomaly Transformer)."""

    model_: Any
    decision_scores_: Any
    threshold_: Any
    config: Any
    name: str

    def encode(self, windows: Tensor) -> Tensor: ...
    def window_scores(self, windows: Tensor) -> Tensor: ...
    def backbone_loss(self, windows: Tensor) -> Tensor: ...
    def standardise(self, values: np.ndarray) -> Tensor: ...
    def threads(self) -> int: ...
    def score(self, series: Any) -> np.ndarray: ...


class Separation(BaseModel):
    """How apart normal and pseudo-anomalous windows are, on the validation batches."""

    model_config = ConfigDict(extra="forbid")

    positive_similarity: float  # mean cos(z_raw, z_aug)
    negative_similarity: float  # mean cos(z_raw, z_pa)
    pseudo_auc: float  # ROC AUC of the backbone's window score, G(x) against x


class PostEpoch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epoch: int
    train_rec: float
    train_con: float
    val_post: float
    val_rec: float
    val_con: float
    seconds: float


class PostTrainingReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epochs_run: int
    best_epoch: int  # -1: no epoch beat the starting weights, which were kept
    stopped_early: bool
    trainable_parameters: int
    batches_per_epoch: int
    batch_size: int
    validation_windows: int
    before: Separation
    after: Separation
    val_post_before: float
    device: str
    threads: int
    seconds: float
    history: list[PostEpoch]


def _trainable(detector: PostTrainable, adjust: str) -> list[torch.nn.Parameter]:
    model = detector.model_
    if adjust == "all":
        return list(model.parameters())
    if not hasattr(model, "encoder_parameters"):
        raise ConfigError(f"{detector.name}: the backbone does not name its encoder's parameters, so adjust='encoder' "
                          "cannot be honoured; use adjust='all'")
    return list(model.encoder_parameters())


@contextmanager
def _only(model: torch.nn.Module, params: list[torch.nn.Parameter]) -> Iterator[None]:
    """Freeze every parameter not in ``params`` inside the block."""
    keep = {id(p) for p in params}
    saved = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in saved:
        p.requires_grad_(id(p) in keep)
    try:
        yield
    finally:
        for p, flag in saved:
            p.requires_grad_(flag)


def _branches(detector: PostTrainable, batch: PairBatch) -> tuple[Tensor, Tensor, Tensor]:
    """The batch's x, A(x) and G(x), standardised as the backbone was trained."""
    if batch.x_aug is None:
        raise ConfigError("post-training needs augmented windows: sample with with_augmented=True")
    raw, aug, pa = (detector.standardise(x) for x in (batch.x_raw, batch.x_aug, batch.x_pa))
    return raw, aug, pa


def _losses(detector: PostTrainable, raw: Tensor, aug: Tensor, pa: Tensor, config: APEConfig
            ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """``L_rec`` on the normal windows, ``L_con``, and the three embeddings (each branch encoded on its own,
    so a batch-dependent backbone never mixes normal and pseudo-anomalous windows)."""
    z_raw, z_aug, z_pa = detector.encode(raw), detector.encode(aug), detector.encode(pa)
    rec = detector.backbone_loss(raw)
    con = info_nce(z_raw, z_aug, z_pa, config.temperature, config.negatives)
    return rec, con, z_raw, z_aug, z_pa


def _window_score(detector: PostTrainable, windows: Tensor) -> np.ndarray:
    scores = detector.window_scores(windows).float()
    return (scores.amax(dim=1) if scores.ndim == 2 else scores).cpu().numpy().astype(np.float64)


@torch.no_grad()
def _validate(detector: PostTrainable, batches: list[PairBatch], config: APEConfig) -> tuple[float, float, float, Separation]:
    model = detector.model_
    was = model.training
    model.eval()
    rec_sum = con_sum = pos = neg = 0.0
    normal, anomalous = [], []
    for batch in batches:
        raw, aug, pa = _branches(detector, batch)
        rec, con, z_raw, z_aug, z_pa = _losses(detector, raw, aug, pa, config)
        rec_sum, con_sum = rec_sum + float(rec), con_sum + float(con)
        pos += float(F.cosine_similarity(z_raw, z_aug, dim=1).mean())
        neg += float(F.cosine_similarity(z_raw, z_pa, dim=1).mean())
        normal.append(_window_score(detector, raw))
        anomalous.append(_window_score(detector, pa))
    model.train(was)
    n = len(batches)
    scores = np.concatenate(normal + anomalous)
    truth = np.r_[np.zeros(sum(map(len, normal))), np.ones(sum(map(len, anomalous)))]
    auc = float(roc_auc_score(truth, scores)) if np.ptp(scores) > 0 else 0.5
    rec_mean, con_mean = rec_sum / n, con_sum / n
    return rec_mean + config.weight * con_mean, rec_mean, con_mean, Separation(
        positive_similarity=pos / n, negative_similarity=neg / n, pseudo_auc=auc)


def post_train(
    detector: PostTrainable,
    train_values: np.ndarray,
    source: PairSource,
    validation: PairSource,
    config: APEConfig | None = None,
    *,
    progress: Callable[[PostEpoch], None] | None = None,
) -> PostTrainingReport:
    """Post-train ``detector`` in place; its training scores and threshold are recomputed on ``train_values``.

    ``source`` draws the training batches (from the first training rows), ``validation`` the fixed
    early-stopping batches (from the last ones).
    """
    config = config or APEConfig()
    model = detector.model_
    if model is None:
        raise ConfigError(f"{detector.name}: fit the backbone before post-training it")
    started = time.perf_counter()
    device = next(model.parameters()).device
    params = _trainable(detector, config.adjust)
    with torch_threads(detector.threads()), torch.random.fork_rng(devices=rng_devices(device)):
        torch.manual_seed(config.seed)
        val_batches = [validation.sample(config.batch_size, with_augmented=True) for _ in range(config.validation_batches)]
        val_post, _, _, before = _validate(detector, val_batches, config)
        keeper = BestState(model, config.patience)
        keeper.update(-1, val_post)
        optimizer = torch.optim.Adam(params, lr=config.lr)
        history: list[PostEpoch] = []
        stopped = False
        with _only(model, params):
            for epoch in range(config.epochs):
                t0 = time.perf_counter()
                model.train()
                rec_sum = con_sum = 0.0
                for _ in range(config.steps_per_epoch):
                    batch = source.sample(config.batch_size, with_augmented=True)
                    optimizer.zero_grad(set_to_none=True)
                    rec, con, *_ = _losses(detector, *_branches(detector, batch), config)
                    loss = rec + config.weight * con
                    if not torch.isfinite(loss):
                        raise ConfigError(f"{detector.name}: post-training diverged in epoch {epoch} (loss {float(loss)}); "
                                          f"lower lr (now {config.lr:g}) or weight (now {config.weight:g})")
                    loss.backward()
                    optimizer.step()
                    rec_sum, con_sum = rec_sum + float(rec.detach()), con_sum + float(con.detach())
                post, rec_v, con_v, _ = _validate(detector, val_batches, config)
                record = PostEpoch(epoch=epoch, train_rec=rec_sum / config.steps_per_epoch,
                                   train_con=con_sum / config.steps_per_epoch, val_post=post, val_rec=rec_v,
                                   val_con=con_v, seconds=time.perf_counter() - t0)
                history.append(record)
                if progress is not None:
                    progress(record)
                if keeper.update(epoch, post):
                    stopped = epoch < config.epochs - 1
                    break
        keeper.restore()
        _, _, _, after = _validate(detector, val_batches, config)
        if getattr(detector.config, "score_with", "backbone") != "backbone":
            detector.calibrate(train_values)  # type: ignore[attr-defined]  # the latent reference moved with the weights
        detector.decision_scores_ = detector.score(train_values)
        detector.threshold_ = percentile_threshold(detector.decision_scores_, detector.config.contamination)
        threads = torch.get_num_threads()
    return PostTrainingReport(
        epochs_run=len(history), best_epoch=keeper.epoch, stopped_early=stopped,
        trainable_parameters=sum(p.numel() for p in params), batches_per_epoch=config.steps_per_epoch,
        batch_size=config.batch_size, validation_windows=sum(len(b.x_raw) for b in val_batches),
        before=before, after=after, val_post_before=val_post, device=str(device), threads=threads,
        seconds=time.perf_counter() - started, history=history,
    )

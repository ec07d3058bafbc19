"""Pretraining the shipped F2A weights on a corpus of separate windows, and the model card that records how.

Two stages, as the F2A recipe implies for a backbone trained here rather than downloaded:

1. the whole TTM learns to forecast (MAE on each window's scaled next ``h`` steps), which is
   what a TSFM's pretraining is;
2. the encoder is frozen and the F2A parts (fusion, decoder, scaling, anomaly head) learn the
   joint loss on the corpus's pseudo-labels, retrieving from the corpus's own training windows.

Windows are laid end to end in one tensor, so the series machinery of :mod:`.training` applies;
a window never retrieves itself or its neighbours in corpus order (windows cut from one source
series overlap their neighbours). Validation windows are a seeded random tenth, not the last
ones: the corpus is ordered by source.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anomalygraph.core.errors import DataError
from anomalygraph.detectors.deep.runtime import available_cores, torch_threads
from anomalygraph.detectors.f2a.backbone import TTMBackbone
from anomalygraph.detectors.f2a.config import F2AConfig
from anomalygraph.detectors.f2a.detector import NET_FILE, save_net
from anomalygraph.detectors.f2a.model import F2ANet
from anomalygraph.detectors.f2a.training import EpochRecord, F2ATrainingReport, build_memory, train

CARD_FILE = "MODEL_CARD.md"
MANIFEST_FILE = "corpus.json"
NEIGHBOUR_WINDOWS = 3
"""Corpus windows this many positions apart or closer are never retrieved for each other."""


@dataclass
class Pretrained:
    net: F2ANet
    config: F2AConfig
    reports: list[F2ATrainingReport]
    seconds: float
    n_parameters: int


def pretrain(values: np.ndarray, labels: np.ndarray, config: F2AConfig, *, backbone_epochs: int, head_epochs: int,
             validation: float = 0.1, progress: Callable[[str, EpochRecord], None] | None = None) -> Pretrained:
    """Both stages on windows ``values [N, L + h]`` with pseudo-labels ``labels [N, L + h]``."""
    width = config.context_length + config.horizon
    if values.ndim != 2 or values.shape[1] != width or labels.shape != values.shape:
        raise DataError(f"the corpus must be [N, {width}] windows (context {config.context_length} + horizon "
                        f"{config.horizon}) with labels of the same shape, got {values.shape} and {labels.shape}")
    started = time.perf_counter()
    rng = np.random.default_rng(config.seed)
    starts = np.arange(len(values)) * width
    held = np.zeros(len(values), dtype=bool)
    held[rng.choice(len(values), max(1, round(validation * len(values))), replace=False)] = True
    split = (starts[~held], starts[held])
    with torch_threads(available_cores()), torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        net = F2ANet(TTMBackbone.build(config, seed=config.seed), heads=config.fusion_heads)
        x = torch.as_tensor(values.reshape(-1, 1), dtype=torch.float32)
        flat = labels.reshape(-1).astype(np.int8)
        step = (lambda r: progress("backbone", r)) if progress else None
        reports = [train(net, x, flat, config, None, stage="encoder", epochs=backbone_epochs, starts=split, progress=step)]
        net.freeze_encoder()
        memory = build_memory(net, x, flat, config, starts=split[0]) if config.rag_k else None
        step = (lambda r: progress("f2a", r)) if progress else None
        reports.append(train(net, x, flat, config, memory, stage="f2a", epochs=head_epochs, starts=split,
                             span=NEIGHBOUR_WINDOWS * width, progress=step))
    return Pretrained(net, config, reports, time.perf_counter() - started, sum(p.numel() for p in net.parameters()))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_weights(result: Pretrained, out: Path, *, command: str, manifest: dict[str, Any]) -> Path:
    """The weights directory: ``f2a.pt``, ``backbone.json``, the corpus manifest and ``MODEL_CARD.md``."""
    save_net(result.net, result.config, out)
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, default=str))
    weights = out / NET_FILE
    card = model_card(result, command=command, manifest=manifest, size=weights.stat().st_size, digest=sha256(weights))
    (out / CARD_FILE).write_text(card)
    return out


def model_card(result: Pretrained, *, command: str, manifest: dict[str, Any], size: int, digest: str) -> str:
    c = result.config
    per_source = manifest.get("windows_per_dataset", {})
    lines = [
        "# F2A-TTM, pretrained here",
        "",
        "A TinyTimeMixer (granite-tsfm 0.3.0 architecture) with F2A's fusion, scaling layer and anomaly head, "
        "pretrained on this machine on a corpus the project builds itself. No official weights went in.",
        "",
        "## Reproduce",
        "",
        f"    {command}",
        "",
        "## What it is",
        "",
        f"- parameters: {result.n_parameters:,}; `f2a.pt` {size / 1e6:.2f} MB, SHA-256 `{digest}`",
        f"- context {c.context_length}, horizon {c.horizon}, patch {c.patch_length}, d_model {c.d_model} x "
        f"{c.num_layers} layers, decoder {c.decoder_d_model} x {c.decoder_num_layers}, adaptive patching "
        f"{c.adaptive_patching_levels}",
        f"- seed {c.seed}; loss {c.loss} (focal gamma {c.focal_gamma}, alpha {c.focal_alpha}; anomalous steps x"
        f"{c.anomaly_weight:g} in the MAE); retrieval k {c.rag_k}",
        f"- trained in {result.seconds / 60:.1f} min on {available_cores()} CPU cores ({platform.processor() or platform.machine()})",
        "",
        "## Corpus",
        "",
        f"- windows: {manifest.get('n_windows', '?')} ({', '.join(f'{k} {v}' for k, v in per_source.items())})",
        f"- labels are **pseudo-labels**: anomalies planted with the rule bank's operators "
        f"({manifest.get('config', {}).get('bank', 'generic')} bank) and TimeAnomalyBench's tune scenarios; no real label",
        "- real data: only the training split of each series (NAB: its probationary first 15 %), and only series "
        "of the *tune* fold; every *validate* series is excluded, so zero-shot figures on validate are on unseen series",
        f"- SHA-256 of the corpus values `{manifest.get('sha256', {}).get('values', '?')}`; details in `corpus.json`",
        "",
        "## Training",
        "",
        "| stage | epochs run | best epoch | train windows | validation windows | last validation loss | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result.reports:
        last = r.epochs[-1].val_loss if r.epochs else float("nan")
        seconds = sum(e.seconds for e in r.epochs)
        lines.append(f"| {r.stage} | {len(r.epochs)} | {r.best_epoch} | {r.n_train_windows} | {r.n_val_windows} | "
                     f"{last:.4f} | {seconds:.0f} |")
    lines += [
        "",
        "## Against the official TTM / TSPulse",
        "",
        "IBM's weights live on a model hub this machine cannot reach, so no comparison was run. With them in a "
        "local directory, `anomalygraph eval f2a --weights DIR` puts both side by side on the same series.",
        "",
    ]
    return "\n".join(lines)

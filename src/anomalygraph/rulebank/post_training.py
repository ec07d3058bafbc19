"""APE post-training fed by a rule bank (or NCAD-style exposure): sources, provenance record, one call.

The post-trainer itself (``detectors.ape``) knows nothing about banks; this module builds its two
pseudo-anomaly sources from a detector's training rows, split in time: the first rows feed the
training batches, the last ``validation_fraction`` the fixed early-stopping batches. Candidate
windows are filtered by the backbone's own training scores (the document's normal candidate
filtering), so windows the backbone already finds odd are not used as normals.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from anomalygraph.core.errors import ConfigError
from anomalygraph.data.series import TimeSeries
from anomalygraph.detectors.ape import APEConfig, APERecord, BankRecord, post_train
from anomalygraph.detectors.ape.ncad import OutlierExposure
from anomalygraph.detectors.ape.provenance import BackboneRecord, weights_sha256, write_record
from anomalygraph.detectors.ape.training import PairSource, PostEpoch, PostTrainable
from anomalygraph.rulebank.sampler import PAGSampler
from anomalygraph.rulebank.schema import RuleBank
from anomalygraph.rulebank.store import bank_sha256, builtin_banks, load_bank

NCAD = "ncad"


def bank_record(bank: RuleBank) -> BankRecord:
    return BankRecord(name=bank.name, version=bank.version, sha256=bank_sha256(bank),
                      made_by=bank.origin.made_by, rules=len(bank.rules))


def resolve_pseudo(spec: str | Path | RuleBank) -> RuleBank | str:
    """A bank (built-in name, file, or object) or the name of a generator without a bank (``ncad``)."""
    if isinstance(spec, RuleBank):
        return spec
    if str(spec) == NCAD:
        return NCAD
    try:
        return load_bank(spec)
    except ConfigError as exc:
        raise ConfigError(f"{exc}; post-training takes a bank file, a built-in bank ({', '.join(builtin_banks())}) "
                          f"or '{NCAD}'") from exc


def sources(
    detector: PostTrainable, train: TimeSeries, pseudo: RuleBank | str, config: APEConfig
) -> tuple[PairSource, PairSource]:
    """The training source (the first training rows) and the validation source (the last ones)."""
    window = int(detector.config.window)
    scores = np.asarray(detector.decision_scores_, dtype=np.float64)
    cut = round(train.length * (1 - config.validation_fraction))
    if cut < 2 * window or train.length - cut < 2 * window:
        raise ConfigError(
            f"post-training needs at least {2 * window} training rows on each side of the validation cut "
            f"(window {window}); '{train.name}' has {train.length} training rows, cut at {cut}"
        )
    parts = (train.slice(0, cut), train.slice(cut, train.length))
    part_scores = (scores[:cut], scores[cut:])
    built: list[PairSource] = []
    for i, (rows, part) in enumerate(zip(parts, part_scores, strict=True)):
        seed = config.seed + 1000 * i
        if isinstance(pseudo, str):
            built.append(OutlierExposure(rows.values, window, scores=part, keep_fraction=config.keep_fraction, seed=seed))
        else:
            built.append(PAGSampler(pseudo, rows, scores=part, keep_fraction=config.keep_fraction, window=window,
                                    seed=seed))
    return built[0], built[1]


def post_train_detector(
    detector: PostTrainable,
    train: TimeSeries,
    pseudo: str | Path | RuleBank,
    config: APEConfig | None = None,
    *,
    progress: Callable[[PostEpoch], None] | None = None,
) -> APERecord:
    """Post-train a fitted ``detector`` on ``train`` (its training rows) in place; returns what to save with it."""
    config = config or APEConfig()
    resolved = resolve_pseudo(pseudo)
    if int(detector.config.window) < 8 and not isinstance(resolved, str):
        raise ConfigError(f"{detector.name}: the PAG sampler needs windows of at least 8 steps (window "
                          f"{detector.config.window})")
    backbone = BackboneRecord(detector=detector.name, config=detector.config.model_dump(mode="json"),
                              weights_sha256=weights_sha256(detector.model_),
                              fit_seconds=getattr(detector, "fit_seconds_", None))
    source, validation = sources(detector, train, resolved, config)
    report = post_train(detector, train.values, source, validation, config, progress=progress)
    return APERecord(
        source="bank" if isinstance(resolved, RuleBank) else resolved,
        bank=bank_record(resolved) if isinstance(resolved, RuleBank) else None,
        backbone=backbone, config=config, report=report, created_at=datetime.now(UTC),
    )


def save_post_trained(detector: PostTrainable, record: APERecord, directory: str | Path) -> Path:
    """The detector as usual plus ``ape.json`` (the record), in ``directory``."""
    out = detector.save(directory)  # type: ignore[attr-defined]
    write_record(out, record)
    return Path(out)

"""What a post-trained artifact records (the bank and the backbone it came from) and the strict check on load.

A post-trained detector is saved like any detector (its weights replace the backbone's) plus
``ape.json``. ``Detector.load`` still reads it; :func:`load_post_trained` also returns the record
and, with ``strict=True``, refuses a bank whose canonical SHA-256 differs from the recorded one, so a
model is never silently paired with a bank it was not trained with.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from anomalygraph.core.errors import DataError
from anomalygraph.detectors.ape.config import APEConfig
from anomalygraph.detectors.ape.training import PostTrainingReport
from anomalygraph.detectors.base import Detector

RECORD_FILE = "ape.json"
RECORD_FORMAT = "anomalygraph-ape/1"


class ProvenanceError(DataError):
    """A post-trained artifact and the bank offered with it do not match."""


class BankRecord(BaseModel):
    """The bank a detector was post-trained with: enough to find it and to prove it is the same one."""

    model_config = ConfigDict(extra="forbid")

    name: str
    version: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the bank's canonical JSON form")
    made_by: str
    rules: int


class BackboneRecord(BaseModel):
    """The fitted backbone post-training started from."""

    model_config = ConfigDict(extra="forbid")

    detector: str
    config: dict[str, Any]
    weights_sha256: str = Field(description="SHA-256 of the backbone's parameters before post-training")
    fit_seconds: float | None = None


class APERecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["anomalygraph-ape/1"] = RECORD_FORMAT
    source: str = Field(description="where the pseudo-anomalies came from: 'bank' or the generator's name (e.g. 'ncad')")
    bank: BankRecord | None = None
    backbone: BackboneRecord
    config: APEConfig
    report: PostTrainingReport
    created_at: datetime


def weights_sha256(module: torch.nn.Module) -> str:
    """SHA-256 over a module's parameters and buffers in state-dict order (names, shapes and bytes)."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        value = tensor.detach().cpu().contiguous()
        digest.update(name.encode())
        digest.update(str(tuple(value.shape)).encode())
        digest.update(value.numpy().tobytes() if value.dtype != torch.bfloat16 else value.float().numpy().tobytes())
    return digest.hexdigest()


def write_record(directory: str | Path, record: APERecord) -> Path:
    path = Path(directory) / RECORD_FILE
    path.write_text(record.model_dump_json(indent=2))
    return path


def read_record(directory: str | Path) -> APERecord:
    path = Path(directory) / RECORD_FILE
    if not path.is_file():
        raise DataError(f"{directory}: not a post-trained detector (no {RECORD_FILE})")
    try:
        return APERecord.model_validate(json.loads(path.read_text()))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise DataError(f"{path}: not a valid APE record ({exc})") from exc


def load_post_trained(
    directory: str | Path, *, bank_sha256: str | None = None, strict: bool = False
) -> tuple[Detector, APERecord]:
    """The detector and its record; ``strict`` demands the bank's hash and refuses any mismatch."""
    record = read_record(directory)
    if strict:
        if record.bank is None:
            raise ProvenanceError(
                f"{directory}: post-trained with '{record.source}', not a rule bank; strict provenance needs a bank record"
            )
        if bank_sha256 is None:
            raise ProvenanceError(f"{directory}: strict provenance asked for, but no bank was given to check against "
                                  f"(recorded: '{record.bank.name}' {record.bank.version}, sha256 {record.bank.sha256[:12]}…)")
        if bank_sha256 != record.bank.sha256:
            raise ProvenanceError(
                f"{directory}: trained with bank '{record.bank.name}' {record.bank.version} (sha256 {record.bank.sha256[:12]}…), "
                f"but the bank given has sha256 {bank_sha256[:12]}…; refusing to load (strict provenance)"
            )
    return Detector.load(directory), record

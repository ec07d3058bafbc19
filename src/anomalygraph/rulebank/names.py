"""The names of the fixed operator registry and of the anomaly shapes: one list everyone reads.

The schema's ``Literal`` types, the operator registry (which must implement exactly these),
the prior miner's choices and the diagnosis graph's shape words all come from here, so adding
an operator is one edit here and one kernel in ``operators.py``.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Literal

OPERATOR_NAMES: tuple[str, ...] = (
    "spike",
    "level_shift",
    "drift",
    "variance_burst",
    "frequency_change",
    "flatline",
    "dropout",
    "contextual",
    "segment_transplant",
    "amplitude_scaling",
    "time_warp",
    "correlation_break",
)

MORPHOLOGY_OPERATOR = MappingProxyType({"dip": "spike"} | {name: name for name in OPERATOR_NAMES})
"""Each shape a prior may name and the operator that makes it (``dip`` is a downward spike)."""

MORPHOLOGIES: tuple[str, ...] = ("spike", "dip", *OPERATOR_NAMES[1:])

OperatorName = Literal[OPERATOR_NAMES]  # type: ignore[valid-type]
"""The fixed operator registry; :mod:`operators` implements exactly these names."""

Morphology = Literal[MORPHOLOGIES]  # type: ignore[valid-type]
"""The closed set of anomaly shapes a prior may name (one per operator, plus ``dip``)."""

WINDOW_SHAPES: tuple[str, ...] = ("spike", "dip", "level_shift", "drift", "variance_burst", "flatline")
"""The shapes the diagnosis explanation prompt offers the model (a subset of :data:`MORPHOLOGIES`)."""

"""Rule banks: anomaly priors compiled into validated, executable pseudo-anomaly rules.

Rules are data, never code: each names an operator from a fixed registry and bounded parameter
distributions. The sampler draws pseudo-anomalous windows from a series with a bank, for
post-training detectors (APE's ``G(X; τ, φ)``).
"""

from anomalygraph.rulebank.operators import OPERATORS, apply_batch, apply_operator, operator_names
from anomalygraph.rulebank.sampler import (
    AugmentConfig,
    PAGSampler,
    PseudoAnomalyBatch,
    SamplerConfig,
    augment,
)
from anomalygraph.rulebank.schema import (
    AnomalyPrior,
    Rule,
    RuleBank,
    compile_prior,
    prior_json_schema,
    rule_bank_json_schema,
)
from anomalygraph.rulebank.store import builtin_banks, diff_banks, load_bank, parse_bank, save_bank

__all__ = [
    "OPERATORS",
    "AnomalyPrior",
    "AugmentConfig",
    "PAGSampler",
    "PseudoAnomalyBatch",
    "Rule",
    "RuleBank",
    "SamplerConfig",
    "apply_batch",
    "apply_operator",
    "augment",
    "builtin_banks",
    "compile_prior",
    "diff_banks",
    "load_bank",
    "operator_names",
    "parse_bank",
    "prior_json_schema",
    "rule_bank_json_schema",
    "save_bank",
]

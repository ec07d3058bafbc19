"""Schema: bounded distributions, rules checked against their operator, priors, JSON Schema."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from anomalygraph.rulebank.distributions import Choice, Fixed, LogUniform, TruncatedNormal, Uniform
from anomalygraph.rulebank.operators import OPERATORS
from anomalygraph.rulebank.schema import (
    AnomalyPrior,
    Rule,
    RuleBank,
    compile_prior,
    prior_json_schema,
    rule_bank_json_schema,
)
from anomalygraph.rulebank.store import builtin_banks, load_bank

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


def _rule(**kw) -> dict:
    base = {"id": "r1", "operator": "spike", "duration": {"unit": "steps", "dist": 1}}
    base.update(kw)
    return base


# ----------------------------------------------------------------- distributions
@settings(max_examples=60, deadline=None)
@given(lo=finite, width=st.floats(0, 1e5), seed=st.integers(0, 2**31))
def test_uniform_and_normal_draws_stay_in_their_support(lo: float, width: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    hi = lo + width
    u = Uniform(low=lo, high=hi)
    draws = u.sample(rng, 200)
    assert draws.min() >= lo and draws.max() <= hi
    if width > 1e-6 * (1 + abs(lo)):
        tn = TruncatedNormal(mean=lo + width / 3, std=width / 2, low=lo, high=hi)
        draws = tn.sample(rng, 200)
        assert draws.min() >= lo and draws.max() <= hi


@settings(max_examples=40, deadline=None)
@given(lo=st.floats(1e-3, 1e3), ratio=st.floats(1, 1e3), seed=st.integers(0, 2**31))
def test_log_uniform_draws_stay_in_their_support(lo: float, ratio: float, seed: int) -> None:
    hi = min(lo * ratio, 1e6)
    draws = LogUniform(low=lo, high=hi).sample(np.random.default_rng(seed), 200)
    assert draws.min() >= lo * (1 - 1e-12) and draws.max() <= hi * (1 + 1e-12)


def test_distributions_reject_unbounded_or_inverted_ranges() -> None:
    with pytest.raises(ValidationError, match="above high"):
        Uniform(low=2, high=1)
    with pytest.raises(ValidationError, match="finite"):
        Uniform(low=0, high=float("inf"))
    with pytest.raises(ValidationError):
        LogUniform(low=0, high=1)
    with pytest.raises(ValidationError, match="almost no mass"):
        TruncatedNormal(mean=0, std=1, low=50, high=60)
    with pytest.raises(ValidationError, match="distinct"):
        Choice(values=[1.0, 1.0])
    with pytest.raises(ValidationError, match="weights"):
        Choice(values=["up", "down"], weights=[1.0])


def test_weighted_choice_and_fixed_draws() -> None:
    rng = np.random.default_rng(0)
    draws = Choice(values=["up", "down"], weights=[9, 1]).sample(rng, 5000)
    assert 0.85 < (draws == "up").mean() < 0.95
    assert (Fixed(value=2.5).sample(rng, 3) == 2.5).all()


# ------------------------------------------------------------------------- rules
def test_missing_parameters_take_operator_defaults() -> None:
    rule = Rule.model_validate(_rule())
    assert set(rule.params) == {p.name for p in OPERATORS["spike"].params}
    assert rule.morphology == "spike"


def test_shorthand_numbers_and_names_are_fixed_values() -> None:
    rule = Rule.model_validate(_rule(params={"magnitude": 4, "direction": "down"}))
    assert rule.params["magnitude"] == Fixed(value=4.0)
    assert rule.params["direction"] == Fixed(value="down")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"magnitude": {"kind": "uniform", "low": 1, "high": 500}}, "rule 'r1': params.magnitude: U\\(1, 500\\) reaches 500, above the operator's bound 100"),
        ({"magnitude": -1}, "rule 'r1': params.magnitude: .* below the operator's bound 0"),
        ({"direction": "sideways"}, "rule 'r1': params.direction: 'sideways' is not one of"),
        ({"direction": 1}, "rule 'r1': params.direction: takes one of"),
        ({"height": 3}, "rule 'r1': params.height: operator 'spike' has no parameter 'height'"),
    ],
)
def test_out_of_range_parameters_name_rule_and_field(params: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Rule.model_validate(_rule(params=params))


def test_operator_names_come_from_the_fixed_registry() -> None:
    with pytest.raises(ValidationError, match="operator"):
        Rule.model_validate(_rule(operator="os.system"))


def test_rule_structure_checks() -> None:
    with pytest.raises(ValidationError, match="morphology: operator 'spike' makes spike, dip"):
        Rule.model_validate(_rule(morphology="drift"))
    with pytest.raises(ValidationError, match="window share must be in"):
        Rule.model_validate(_rule(duration={"unit": "window", "dist": 1.5}))
    with pytest.raises(ValidationError, match="durations must be positive"):
        Rule.model_validate(_rule(duration={"unit": "steps", "dist": {"kind": "uniform", "low": 0, "high": 3}}))
    with pytest.raises(ValidationError, match="needs phase"):
        Rule.model_validate(_rule(where={"location": "phase"}))
    with pytest.raises(ValidationError, match="mode 'named' needs"):
        Rule.model_validate(_rule(channels={"mode": "named"}))
    with pytest.raises(ValidationError, match="cannot touch all"):
        Rule.model_validate(_rule(operator="correlation_break", channels={"mode": "all"}))
    with pytest.raises(ValidationError, match="extra"):
        Rule.model_validate(_rule(code="__import__('os')"))


def test_bank_rejects_duplicate_ids() -> None:
    with pytest.raises(ValidationError, match="appears more than once"):
        RuleBank.model_validate({"name": "b", "rules": [_rule(), _rule()]})


# ------------------------------------------------------------------------ priors
def _prior(**kw) -> AnomalyPrior:
    base = {"mechanism": "a pump trips", "morphology": "dip", "duration": {"unit": "steps", "dist": 3},
            "scale": {"kind": "uniform", "low": 2, "high": 4}}
    base.update(kw)
    return AnomalyPrior.model_validate(base)


def test_dip_prior_compiles_to_a_downward_spike() -> None:
    rule = compile_prior(_prior(context={"location": "peak", "channels": ["flow"]}), "pump_trip")
    assert rule.operator == "spike" and rule.morphology == "dip"
    assert rule.params["direction"] == Fixed(value="down")
    assert rule.params["magnitude"] == Uniform(low=2, high=4)
    assert rule.channels.mode == "named" and rule.channels.names == ["flow"]
    assert rule.where.location == "peak"
    assert rule.provenance.prior is not None and rule.provenance.source == "llm"


def test_prior_scale_outside_the_operator_bounds_is_an_error() -> None:
    with pytest.raises(ValidationError, match=r"rule 'big': params\.magnitude"):
        compile_prior(_prior(scale={"kind": "uniform", "low": 2, "high": 400}), "big")
    with pytest.raises(ValueError, match="has no magnitude"):
        compile_prior(_prior(morphology="flatline"), "stuck")


# ------------------------------------------------------------------- JSON Schema
def _variant(schema: dict, operator: str) -> dict:
    for variant in schema["$defs"]["Rule"]["oneOf"]:
        if variant["properties"]["operator"]["const"] == operator:
            return variant
    raise KeyError(operator)


def test_json_schema_has_one_variant_per_operator_with_bounds() -> None:
    schema = rule_bank_json_schema()
    assert "report" not in schema["properties"]
    assert len(schema["$defs"]["Rule"]["oneOf"]) == len(OPERATORS)
    spike = _variant(schema, "spike")["properties"]["params"]
    assert spike["additionalProperties"] is False
    uniform = next(v for v in spike["properties"]["magnitude"]["oneOf"] if v["properties"]["kind"]["const"] == "uniform")
    assert uniform["properties"]["high"]["maximum"] == 100
    assert spike["properties"]["direction"]["oneOf"][0]["properties"]["value"]["enum"] == ["up", "down"]


@pytest.mark.parametrize("name", builtin_banks())
def test_builtin_banks_fit_the_exported_schema(name: str) -> None:
    """Every rule's params use names and kinds the schema allows, with values inside its bounds."""
    schema = rule_bank_json_schema()
    for rule in load_bank(name).rules:
        props = _variant(schema, rule.operator)["properties"]["params"]["properties"]
        for pname, dist in rule.params.items():
            variants = {v["properties"]["kind"]["const"]: v for v in props[pname]["oneOf"]}
            assert dist.kind in variants
            item = variants[dist.kind]["properties"]
            value_schema = item.get("value") or item.get("low") or item["values"]["items"]
            if "enum" in value_schema:
                assert set(dist.categories()) <= set(value_schema["enum"])
            else:
                lo, hi = dist.support()
                assert value_schema["minimum"] <= lo and hi <= value_schema["maximum"]


def test_prior_schema_is_self_contained() -> None:
    schema = prior_json_schema()
    assert schema["properties"]["priors"]["items"] == {"$ref": "#/$defs/AnomalyPrior"}
    assert "ContextPrior" in schema["$defs"] and "AnomalyPrior" in schema["$defs"]
    assert set(schema["$defs"]["AnomalyPrior"]["properties"]["morphology"]["enum"]) >= {"spike", "dip", "flatline"}

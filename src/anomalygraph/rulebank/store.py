"""Bank files: YAML (or JSON) with version and provenance, loaded with validation and clear errors.

``load_bank`` takes a path or the name of a bank shipped with the package (``cutaddpaste``,
``generic``, the TimeAnomalyBench scenario banks). Files are read with ``yaml.safe_load``:
plain data only, no tags that construct objects. A validation error names the file, the rule
(by position and id) and the field.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from anomalygraph.core.errors import ConfigError
from anomalygraph.rulebank.schema import RuleBank

_BANKS_PACKAGE = "anomalygraph.rulebank.banks"
MAX_ERRORS = 8


def builtin_banks() -> list[str]:
    """Names of the banks shipped with the package."""
    root = resources.files(_BANKS_PACKAGE)
    return sorted(p.name.rsplit(".", 1)[0] for p in root.iterdir() if p.name.endswith((".yaml", ".yml")))


def _read_builtin(name: str) -> tuple[str, str]:
    for suffix in (".yaml", ".yml"):
        res = resources.files(_BANKS_PACKAGE) / f"{name}{suffix}"
        if res.is_file():
            return res.read_text(encoding="utf-8"), f"built-in bank '{name}'"
    raise ConfigError(f"no bank file or built-in bank named '{name}'; built-in banks: {', '.join(builtin_banks())}")


def _format_errors(exc: ValidationError, data: Any, where: str) -> str:
    parts = []
    for err in exc.errors()[:MAX_ERRORS]:
        loc = list(err["loc"])
        prefix, rule_id = "", None
        if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
            index = loc[1]
            if isinstance(data, dict) and isinstance(data.get("rules"), list) and index < len(data["rules"]):
                rule = data["rules"][index]
                rule_id = rule.get("id") if isinstance(rule, dict) else None
            prefix = f"rules[{index}]" + (f" (id '{rule_id}')" if rule_id else "")
            loc = loc[2:]
        # drop pydantic's union-member tags (e.g. 'uniform', 'function-before[...]') from the path
        field = ".".join(str(p) for p in loc if not (isinstance(p, str) and ("[" in p or p in _DIST_KINDS)))
        msg = err["msg"].removeprefix("Value error, ")
        if rule_id is not None:
            msg = msg.removeprefix(f"rule '{rule_id}': ")  # the prefix names the rule already
        parts.append(": ".join(x for x in (prefix, field, msg) if x))
    more = len(exc.errors()) - MAX_ERRORS
    tail = f" (and {more} more)" if more > 0 else ""
    return f"{where}: invalid rule bank: " + "; ".join(parts) + tail


_DIST_KINDS = {"fixed", "uniform", "log_uniform", "normal", "choice"}


def parse_bank(text: str, where: str = "bank") -> RuleBank:
    """A bank from YAML or JSON text; ``where`` names the source in error messages."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{where}: not valid YAML{at}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: a rule bank must be a mapping with name, rules, ..., got {type(data).__name__}")
    try:
        return RuleBank.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, data, where)) from None


def load_bank(source: str | Path) -> RuleBank:
    """Load and validate a bank from a file path or a built-in bank name."""
    path = Path(source)
    if path.suffix.lower() in {".yaml", ".yml", ".json"} or path.exists():
        if not path.is_file():
            raise ConfigError(f"{path}: bank file not found")
        return parse_bank(path.read_text(encoding="utf-8"), str(path))
    text, where = _read_builtin(str(source))
    return parse_bank(text, where)


def bank_to_data(bank: RuleBank) -> dict[str, Any]:
    return bank.model_dump(mode="json", exclude_none=True)


def bank_sha256(bank: RuleBank) -> str:
    """SHA-256 of the bank's canonical form: its JSON with sorted keys and no whitespace, without the
    ``report`` (measurements about the bank, which do not change what it samples).

    The same bank read from YAML or JSON, or with its keys reordered, hashes the same; any change
    to a rule, weight, version or origin changes the hash.
    """
    data = {k: v for k, v in bank_to_data(bank).items() if k != "report"}
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def dump_bank(bank: RuleBank, fmt: str = "yaml") -> str:
    data = bank_to_data(bank)
    if fmt == "json":
        return json.dumps(data, indent=2)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def save_bank(bank: RuleBank, path: str | Path) -> Path:
    """Write ``bank`` as YAML (or JSON for a ``.json`` path); loading it back gives an equal bank."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_bank(bank, "json" if path.suffix.lower() == ".json" else "yaml"), encoding="utf-8")
    return path


# ------------------------------------------------------------------------ diff
class FieldChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str
    old: Any = None
    new: Any = None


class BankDiff(BaseModel):
    """What changed from bank ``a`` to bank ``b``: metadata, rules added, removed and changed."""

    model_config = ConfigDict(extra="forbid")

    a: str
    b: str
    metadata: list[FieldChange]
    added: list[str]
    removed: list[str]
    changed: dict[str, list[FieldChange]]

    @property
    def identical(self) -> bool:
        return not (self.metadata or self.added or self.removed or self.changed)

    def lines(self) -> list[str]:
        if self.identical:
            return [f"{self.a} and {self.b} hold the same rules"]
        out = [f"~ {c.path}: {c.old!r} -> {c.new!r}" for c in self.metadata]
        out += [f"+ rule {rid}" for rid in self.added]
        out += [f"- rule {rid}" for rid in self.removed]
        for rid, changes in self.changed.items():
            out += [f"~ rule {rid}: {c.path}: {_short(c.old)} -> {_short(c.new)}" for c in changes]
        return out


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _walk(old: Any, new: Any, path: str, out: list[FieldChange]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in list(old) + [k for k in new if k not in old]:
            _walk(old.get(key), new.get(key), f"{path}.{key}" if path else str(key), out)
    elif old != new:
        out.append(FieldChange(path=path, old=old, new=new))


def diff_banks(a: RuleBank, b: RuleBank) -> BankDiff:
    """Rule-by-rule differences (matched by id), down to the changed field."""
    da, db = bank_to_data(a), bank_to_data(b)
    metadata: list[FieldChange] = []
    for key in ("name", "version", "description", "origin"):
        _walk(da.get(key), db.get(key), key, metadata)
    rules_a = {r["id"]: r for r in da["rules"]}
    rules_b = {r["id"]: r for r in db["rules"]}
    changed: dict[str, list[FieldChange]] = {}
    for rid in rules_a.keys() & rules_b.keys():
        changes: list[FieldChange] = []
        _walk(rules_a[rid], rules_b[rid], "", changes)
        if changes:
            changed[rid] = changes
    return BankDiff(
        a=f"{a.name}@{a.version}",
        b=f"{b.name}@{b.version}",
        metadata=metadata,
        added=[rid for rid in rules_b if rid not in rules_a],
        removed=[rid for rid in rules_a if rid not in rules_b],
        changed={rid: changed[rid] for rid in rules_a if rid in changed},
    )


__all__ = ["BankDiff", "builtin_banks", "diff_banks", "dump_bank", "load_bank", "parse_bank", "save_bank"]

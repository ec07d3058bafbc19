"""Which anomaly shapes a fault's wording points to: a fixed vocabulary, read before the model.

Operators, incident logs and maintenance notes describe faults in a small common vocabulary
("froze", "crept up", "reads zero", "after the deploy", "at night"), and each of those words
says something about the shape the fault leaves in the readings. The prior miner turns a fault
into candidate shapes with this table first and lets the model choose among them, so a small
model picks between two or three plausible shapes instead of twelve.

The table was written from general engineering vocabulary, then extended with the verbs the
tune scenarios' incident notes use ("crash", "trip", "bounce", "re-send", "on and off"), before
the miner was measured on TimeAnomalyBench's validate scenarios; it must not be edited to fit
those: a cue belongs here when the word means that shape in most domains. Cues are matched as word prefixes on a
lower-cased text, each with an English inflection or none ("leak" matches "leaking", "froze"
matches "frozen", "late" does not match "latency"); a cue ending in ``*`` is a stem and takes any
ending; multi-word cues match as phrases.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from anomalygraph.rulebank.names import MORPHOLOGIES

_CUES: dict[str, tuple[str, ...]] = {
    "flatline": (
        "stuck", "froze", "freez*", "frozen", "hang", "hanging", "hung", "stopped updating", "stops updating", "not updating",
        "constant value", "same value", "last value", "latched", "seized", "flat", "unchanging",
        "stopped reporting", "sticking", "repeating its last", "repeats its last", "stopped turning",
    ),
    "dropout": (
        "reads zero", "read zero", "to zero", "zero reading", "loses", "lost", "loss of signal", "gap", "missing",
        "outage", "disconnect*", "offline", "no signal", "no data", "dropout", "drop out", "drops out", "unplugged", "loose",
        "power cut", "blackout", "came off", "fell off", "slipped off", "detached", "dead", "crash*", "trip*", "producing nothing", "kept stopping", "went dark",
    ),
    "spike": (
        "spike", "surge", "inrush", "glitch", "blip", "transient", "momentary", "brief jump", "sudden jump",
        "burst of", "outlier", "peaks when", "peak when",
        "jolt", "kick", "bounc*", "counting one", "double count*",
    ),
    "dip": (
        "dip", "sag", "brief drop", "sudden drop", "brownout", "short drop", "momentary drop", "undershoot",
    ),
    "level_shift": (
        "deploy", "release", "rollback", "rolled back", "restart*", "setpoint", "set point", "misconfigur*",
        "wrong setting", "entered wrong", "set wrong", "recalibrat*", "offset", "bias", "step change", "switched",
        "left open", "left half", "half shut", "half-open", "half open", "partly closed", "bypass", "blocked",
        "upgrade*", "replaced", "new version", "config change", "failover", "rerouted", "closure", "lane closed",
    ),
    "drift": (
        "creep*", "crept", "wear", "worn", "degrad*", "fouling*", "fouled", "gradual", "slowly", "build-up", "buildup",
        "ageing", "aging", "leak", "ran hot", "runs hot", "running hot", "heats up", "overheat*", "drift",
        "decay", "saturat*", "warming until", "climbing", "creeping", "filling up", "fills up", "clogging", "dehydrat*", "fatigue", "erosion*", "corrosion*",
    ),
    "variance_burst": (
        "cavitation", "noisy", "noise", "jitter", "erratic", "flicker", "unstable", "instabil*", "chatter", "flaky",
        "intermittent", "loose", "turbulen*", "shaky", "shaking", "rattl*", "hunting*", "storm", "contention",
        "thrash*", "movement artefact", "movement artifact", "motion artefact", "motion artifact", "shiver",
    ),
    "frequency_change": (
        "faster", "slower", "frequency", "short cycl*", "short-cycl*", "cycling*", "pace", "tachy*", "brady*", "rhythm*",
        "oscillat*", "rpm", "speed of the cycle", "on and off", "far too often", "too often",
    ),
    "amplitude_scaling": (
        "imbalance", "unbalance", "out of balance", "swings grow", "larger swings", "bigger swings", "resonan*",
        "damping", "amplitude", "misalign", "wider swings", "stronger swings",
    ),
    "contextual": (
        "at night", "overnight", "nobody", "no one", "weekend", "off-hours", "off hours", "out of hours",
        "after hours", "wrong time", "left on", "holiday", "idle time", "while idle", "when idle",
        "unoccupied", "middle of the night",
    ),
    "time_warp": (
        "late", "early", "delayed", "delay", "ahead of", "behind schedule", "clock", "time zone", "timezone",
        "daylight saving", "schedule shift", "shifted schedule", "out of phase", "lagging", "sooner",
    ),
    "correlation_break": (
        "against", "decoupl*", "no longer follow", "stopped following", "stops following", "does not follow",
        "mismatch", "disagree", "inconsistent", "diverg*", "out of step", "uncoupled", "independent of",
        "unrelated to",
    ),
    "segment_transplant": (
        "replay*", "replayed", "duplicat*", "copied", "stale", "backfill", "resent", "re-sent", "cached",
        "old data", "repeated an old", "playback", "re-send*", "resend*", "already sent", "older events",
    ),
}

FAULT_CUES: Mapping[str, tuple[str, ...]] = MappingProxyType(_CUES)
"""Shape -> the words that point to it."""

assert set(FAULT_CUES) == set(MORPHOLOGIES), "every shape needs cues and every cue a known shape"

def _pattern(cue: str) -> str:
    stem = cue.endswith("*")
    body = re.escape(cue.rstrip("*")).replace(r"\ ", r"\s+")
    return r"\b" + body + (r"[a-z]*" if stem else r"(?:s|es|d|ed|ing|er|ers|en|y|ly)?\b")


_PATTERNS = {
    shape: [re.compile(_pattern(cue)) for cue in cues] for shape, cues in _CUES.items()
}


def shapes_for(text: str) -> list[tuple[str, int]]:
    """The shapes ``text`` points to with the number of their cues it contains, most first.

    Ties keep the registry's order, so the result is deterministic; an empty list means the
    wording names no shape (the model then chooses from all of them).
    """
    low = " ".join(text.lower().split())
    hits = [(shape, sum(1 for p in _PATTERNS[shape] if p.search(low))) for shape in MORPHOLOGIES]
    ranked = sorted((h for h in hits if h[1] > 0), key=lambda h: -h[1])
    return ranked


def cues_in(text: str, shape: str) -> list[str]:
    """The cues of ``shape`` found in ``text`` (the evidence a candidate cites)."""
    low = " ".join(text.lower().split())
    return [cue.rstrip("*") for cue, p in zip(_CUES[shape], _PATTERNS[shape], strict=True) if p.search(low)]


def words(text: str) -> set[str]:
    """Lower-case word stems of ``text`` (first five letters), for matching faults to channels."""
    return {w[:5] for w in re.findall(r"[a-z][a-z0-9]+", text.lower()) if len(w) >= 3} - _STOP


_STOP = {"the", "and", "for", "with", "from", "that", "this", "when", "once", "some", "into", "over", "under",
         "which", "there", "their", "after", "befor", "about", "more", "less", "than", "were", "was", "has",
         "have", "had", "not", "all", "any", "per", "its", "are", "but", "one", "two", "out", "off", "each"}


def names_in(text: str, names: Iterable[str], descriptions: Mapping[str, str] | None = None) -> list[str]:
    """The names (e.g. channels) whose words, or whose description's words, appear in ``text``, best first."""
    seen = words(text)
    scored = []
    for i, name in enumerate(names):
        own = words(name.replace("_", " "))
        score = 2 * len(own & seen)
        if descriptions and descriptions.get(name):
            score += len(words(descriptions[name]) & seen)
        if score:
            scored.append((score, i, name))
    return [name for _, _, name in sorted(scored, key=lambda t: (-t[0], t[1]))]


__all__ = ["FAULT_CUES", "cues_in", "names_in", "shapes_for", "words"]

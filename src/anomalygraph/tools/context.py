"""What tools share within one conversation or graph run: allowed roots, loaded series, results."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from anomalygraph.core.device import cuda_available
from anomalygraph.core.errors import DataError
from anomalygraph.data.loaders import load_series
from anomalygraph.data.series import TimeSeries
from anomalygraph.detectors.run import DetectorRun


def resolve_in_roots(path: str | Path, roots: list[Path]) -> Path:
    """The real path of ``path`` if it lies inside one of ``roots``; symlinks and ``..`` are resolved first.

    A relative path is tried against the working directory, then against each root in order.
    """
    if not roots:
        raise DataError("no data roots are configured, so no file may be read")
    real_roots = [Path(r).resolve() for r in roots]
    raw = Path(path).expanduser()
    candidates = [raw] if raw.is_absolute() else [Path.cwd() / raw, *(root / raw for root in real_roots)]
    resolved = [c.resolve() for c in candidates]
    inside = [r for r in resolved if any(r.is_relative_to(root) for root in real_roots)]
    for real in inside:
        if real.exists():
            return real
    roots_text = ", ".join(map(str, real_roots))
    if inside:
        raise DataError(f"{path}: file not found under the data roots ({roots_text})")
    raise DataError(f"{path}: outside the configured data roots ({roots_text})")


@dataclass
class ToolContext:
    """Roots the tools may read, where they write plots, and a cache of what they computed."""

    data_roots: list[Path]
    output_dir: Path = Path("out/tools")
    series: dict[str, TimeSeries] = field(default_factory=dict)
    runs: dict[tuple[str, str], DetectorRun] = field(default_factory=dict)
    gpu: bool | None = None
    """Whether heavy (deep) detectors may run; ``None``: whether CUDA is available."""

    def has_gpu(self) -> bool:
        if self.gpu is None:
            self.gpu = cuda_available()
        return self.gpu

    @classmethod
    def from_settings(cls) -> ToolContext:
        from anomalygraph.core.settings import get_settings

        settings = get_settings()
        return cls(data_roots=list(settings.data.roots), output_dir=settings.output.dir / "tools")

    def load(self, path: str) -> tuple[str, TimeSeries]:
        """Load once per run; the key is the real path, so two spellings share one series."""
        real = resolve_in_roots(path, self.data_roots)
        key = str(real)
        if key not in self.series:
            self.series[key] = load_series(real)
        return key, self.series[key]

    def plot_path(self, series: TimeSeries, suffix: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{series.name}_{suffix}")
        self.output_dir.mkdir(parents=True, exist_ok=True)
        return self.output_dir / f"{safe}.png"

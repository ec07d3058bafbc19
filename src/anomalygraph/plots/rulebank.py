"""A grid of normal windows and their pseudo-anomalous versions, for eyeballing a bank.

Each cell shows one draw on the touched channel that changed most: the normal window in grey,
the pseudo-anomalous one in red on top where they differ, the mask shaded.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from anomalygraph.core.intervals import mask_to_intervals
from anomalygraph.rulebank.sampler import PseudoAnomalyBatch

NORMAL_COLOUR = "#7f7f7f"
ANOMALY_COLOUR = "#d62728"
MASK_COLOUR = "#ff9896"


def most_changed_channel(batch: PseudoAnomalyBatch, i: int) -> int:
    """The touched channel of row ``i`` to show: the most changed relative to its spread, among
    channels that vary in the normal window, continuous ones before on/off ones."""
    diff = np.abs(batch.x_pa[i] - batch.x_raw[i]).max(axis=0)
    spread = np.ptp(batch.x_raw[i], axis=0)
    touched = batch.channels[i] & (diff > 0)
    varying = touched & (spread > 0)
    # prefer continuous signals over on/off command channels (two distinct values at most)
    levels = np.array([len(np.unique(batch.x_raw[i, :, c])) if varying[c] else 0 for c in range(len(varying))])
    if (levels > 2).any():
        varying &= levels > 2
    if varying.any():
        return int(np.argmax(np.where(varying, diff / np.where(spread > 0, spread, 1.0), -1.0)))
    if touched.any():
        return int(np.argmax(np.where(touched, diff, -1.0)))
    return int(np.argmax(batch.channels[i]))


def plot_pseudo_anomalies(
    batch: PseudoAnomalyBatch,
    path: str | Path,
    *,
    channel_names: list[str] | None = None,
    title: str | None = None,
    n_cols: int = 4,
) -> Path:
    """Write the PNG grid for every row of ``batch`` (keep it to a few dozen rows)."""
    n = len(batch)
    n_cols = max(1, min(n_cols, n))
    n_rows = math.ceil(n / n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.6 * n_cols, 2.5 * n_rows + 0.8), squeeze=False)
    steps = np.arange(batch.x_raw.shape[1])
    for k, ax in enumerate(axes.ravel()):
        if k >= n:
            ax.axis("off")
            continue
        c = most_changed_channel(batch, k)
        for start, end in mask_to_intervals(batch.mask[k]):
            ax.axvspan(start - 0.5, end + 0.5, color=MASK_COLOUR, alpha=0.35, lw=0)
        anomalous = np.ma.masked_where(batch.x_pa[k, :, c] == batch.x_raw[k, :, c], batch.x_pa[k, :, c])
        # draw the pseudo-anomaly over the neighbouring steps too, so short segments join the line
        joined = np.convolve(~np.ma.getmaskarray(anomalous), np.ones(3), mode="same") > 0
        ax.plot(steps, batch.x_raw[k, :, c], color=NORMAL_COLOUR, lw=1.1)
        ax.plot(steps, np.ma.masked_where(~joined, batch.x_pa[k, :, c]), color=ANOMALY_COLOUR, lw=1.1)
        name = channel_names[c] if channel_names else f"ch{c}"
        extra = int(batch.channels[k].sum()) - 1
        suffix = f" +{extra} ch" if extra > 0 else ""
        ax.set_title(f"{batch.rule_id(k)}\n{name}{suffix} · start {int(batch.starts[k])}", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.margins(x=0)
    handles = [
        Line2D([], [], color=NORMAL_COLOUR, lw=1.5, label="normal window"),
        Line2D([], [], color=ANOMALY_COLOUR, lw=1.5, label="pseudo-anomalous version"),
        Patch(color=MASK_COLOUR, alpha=0.35, label="mask (anomalous steps)"),
    ]
    top = 1 - 0.75 / fig.get_figheight()
    fig.tight_layout(rect=(0, 0, 1, top))
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=9, frameon=False, bbox_to_anchor=(0.5, top))
    if title:
        fig.suptitle(title, fontsize=11, y=0.995)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path

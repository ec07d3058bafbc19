"""The TTM backbone (granite-tsfm's TinyTimeMixer) split where F2A needs to reach in.

F2A freezes the encoder and fine-tunes what follows, and fuses retrieved neighbours between
the two, so the backbone is used in its parts rather than through ``forward``: the scaler and
patcher (no weights), the encoder (frozen), the decoder and the forecast head (trained). The
architecture comes from ``granite-tsfm`` (the ``[f2a]`` extra); official weights load from a
local directory only, never from the hub.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from anomalygraph.core.errors import ConfigError, DataError
from anomalygraph.detectors.f2a.config import BackboneConfig

EXTRA_HINT = "F2A needs the [f2a] extra (granite-tsfm, faiss-cpu): pip install 'anomalygraph[f2a]'"


def _tsfm() -> Any:
    try:
        from tsfm_public.models import tinytimemixer
    except ImportError as exc:
        raise ConfigError(f"{EXTRA_HINT} ({exc})") from exc
    return tinytimemixer


def ttm_config(config: BackboneConfig) -> Any:
    """A TinyTimeMixerConfig for ``config`` (channel-independent: one model for any number of channels)."""
    tsfm = _tsfm()
    return tsfm.TinyTimeMixerConfig(
        context_length=config.context_length, prediction_length=config.horizon, patch_length=config.patch_length,
        patch_stride=config.patch_length, num_input_channels=1, d_model=config.d_model, num_layers=config.num_layers,
        decoder_d_model=config.decoder_d_model, decoder_num_layers=config.decoder_num_layers,
        adaptive_patching_levels=config.adaptive_patching_levels, scaling="std", mode="common_channel",
        dropout=0.1, head_dropout=0.1, loss=None,
    )


class TTMBackbone(nn.Module):
    """Encode ``[B, L, C]`` windows, embed them for retrieval, decode, forecast ``[B, h, C]``."""

    def __init__(self, ttm: nn.Module) -> None:
        super().__init__()
        self.ttm = ttm
        cfg = ttm.config
        self.context_length: int = int(cfg.context_length)
        self.horizon: int = int(cfg.prediction_length)
        self.d_model: int = int(cfg.d_model)
        self.decoder_d_model: int = int(cfg.decoder_d_model)

    @classmethod
    def build(cls, config: BackboneConfig, seed: int = 0) -> TTMBackbone:
        torch.manual_seed(seed)
        return cls(_tsfm().TinyTimeMixerForPrediction(ttm_config(config)))

    @classmethod
    def from_directory(cls, path: Path) -> TTMBackbone:
        """Official or saved TTM weights from a local directory (``config.json`` + weights); no download."""
        if not (Path(path) / "config.json").is_file():
            raise DataError(f"{path}: not a TTM weights directory (no config.json)")
        try:
            ttm = _tsfm().TinyTimeMixerForPrediction.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: cannot load TTM weights ({exc})") from exc
        return cls(ttm)

    # ------------------------------------------------------------------ parts
    def encoder_module(self) -> nn.Module:
        """What F2A freezes: the TTM backbone (patching, encoder; the scaler has no weights)."""
        return self.ttm.backbone

    def encoder_parameters(self) -> list[nn.Parameter]:
        return list(self.encoder_module().parameters())

    # ------------------------------------------------------------ Encoder contract
    def encode(self, windows: torch.Tensor) -> torch.Tensor:
        """The ``Encoder`` contract: one embedding ``[B, 2d]`` per window ``[B, L, C]`` (what retrieval indexes)."""
        return self.embed(self.encode_parts(windows)[0])

    def backbone_loss(self, windows: torch.Tensor) -> torch.Tensor:
        """The backbone's own loss on ``[B, L + h, C]`` windows: MAE of its scaled forecast of the last ``h`` rows."""
        x, y = windows[:, : self.context_length], windows[:, self.context_length : self.context_length + self.horizon]
        forecast, loc, scale = self.forecast_scaled(x)
        return (forecast - (y - loc) / scale).abs().mean()

    def encode_parts(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x [B, L, C]`` -> hidden ``[B, C, P, d]``, patches, loc and scale ``[B, 1, C]`` of each window."""
        out = self.ttm.backbone(x, return_dict=True)
        return out.last_hidden_state, out.patch_input, out.loc, out.scale

    @staticmethod
    def embed(hidden: torch.Tensor) -> torch.Tensor:
        """One vector per window for retrieval: the mean and the last patch, averaged over channels ``[B, 2d]``."""
        return torch.cat([hidden.mean(dim=2), hidden[:, :, -1]], dim=-1).mean(dim=1)

    def decode(self, hidden: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        """Decoder output ``[B, C, P, d_dec]``."""
        out, _ = self.ttm.decoder(hidden_state=hidden, patch_input=patches)
        return out

    def head(self, decoded: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Forecast in each window's scaled units ``[B, h, C]``."""
        return self.ttm.head(decoded, past_values=x)

    def forecast_scaled(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The plain TTM forecast (no F2A parts): scaled forecast, loc, scale."""
        hidden, patches, loc, scale = self.encode_parts(x)
        return self.head(self.decode(hidden, patches), x), loc, scale

    def save_directory(self, path: Path) -> None:
        """The backbone alone in granite-tsfm's format, loadable by :meth:`from_directory`."""
        self.ttm.save_pretrained(str(path))

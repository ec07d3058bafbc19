"""Settings shared by a multi-detector run: plain keys reach every detector, scoped keys one."""

from __future__ import annotations

import pytest

from anomalygraph.core.errors import ConfigError
from anomalygraph.detectors.run import settings_for


def test_plain_keys_reach_all_and_scoped_keys_only_their_detector() -> None:
    shared = {"seed": 3, "anomaly_transformer.epochs": 1, "iforest.n_estimators": 50}
    names = ["anomaly_transformer", "iforest"]
    assert settings_for("anomaly_transformer", shared, names) == {"seed": 3, "epochs": 1}
    assert settings_for("iforest", shared, names) == {"seed": 3, "n_estimators": 50}


@pytest.mark.parametrize("key", [".epochs", "anomaly_transformer."])
def test_malformed_scoped_key_is_an_error(key: str) -> None:
    with pytest.raises(ConfigError, match=r"expected key or detector\.key"):
        settings_for("anomaly_transformer", {key: 1})


def test_scope_outside_the_run_is_an_error() -> None:
    with pytest.raises(ConfigError, match="names detector 'iforst'"):
        settings_for("iforest", {"iforst.n_estimators": 5}, ["iforest"])

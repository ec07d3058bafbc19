"""APE: post-training a fitted backbone with pseudo-anomalies (three-branch contrastive learning).

The post-trainer works on arrays and on anything with the ``PostTrainable`` shape; where the
pseudo-anomalies come from (a rule bank through the PAG sampler, or NCAD-style contextual outlier
exposure) is a ``PairSource`` the caller passes in, so the bank is one variable of the experiment.
"""

from anomalygraph.detectors.ape.config import APEConfig
from anomalygraph.detectors.ape.loss import info_nce
from anomalygraph.detectors.ape.provenance import (
    APERecord,
    BankRecord,
    ProvenanceError,
    load_post_trained,
)
from anomalygraph.detectors.ape.training import PostTrainingReport, post_train

__all__ = [
    "APEConfig",
    "APERecord",
    "BankRecord",
    "PostTrainingReport",
    "ProvenanceError",
    "info_nce",
    "load_post_trained",
    "post_train",
]

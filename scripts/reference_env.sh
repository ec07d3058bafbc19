#!/usr/bin/env bash
# Isolated environment with the TSB-AD reference package (metrics, find_length_rank, peer detectors).
# TSB-AD pins numpy<2, which clashes with the project's environment, so it lives in its own venv
# and tests talk to it through a subprocess. Idempotent: a stamp file records a finished install.
set -euo pipefail
VENV=${1:-.venv-tsbad}
STAMP="$VENV/.installed-tsbad-1.5"
if [ ! -f "$STAMP" ]; then
    python3.11 -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    # torch==2.13.0 is the CPU build on this machine's disk; TSB-AD's own requirements would pull a CUDA build.
    "$VENV/bin/pip" install -q "numpy<2" pandas scikit-learn scipy matplotlib tqdm statsmodels "torch==2.13.0"
    "$VENV/bin/pip" install -q --no-deps "TSB-AD==1.5"
    "$VENV/bin/python" -c "from TSB_AD.evaluation.metrics import get_metrics; from TSB_AD.utils.slidingWindows import find_length_rank"
    touch "$STAMP"
fi
# The peer detectors benchmarks/tsbad_baselines.py compares against: POLY imports arch (models/distance.py),
# Sub-PCA hurst (models/feature.py), KShapeAD tslearn and stumpy (models/SAND.py). Their own stamp, so an
# environment made before they were needed gets them too; "numpy<2" keeps TSB-AD's numpy in place.
DETECTORS_STAMP="$VENV/.installed-tsbad-1.5-detectors"
if [ ! -f "$DETECTORS_STAMP" ]; then
    "$VENV/bin/pip" install -q "numpy<2" "arch==8.0.0" "hurst==0.0.5" "tslearn==0.10.0" "stumpy==1.14.1"
    "$VENV/bin/python" -c "import TSB_AD.models.POLY, TSB_AD.models.SAND, TSB_AD.models.Series2Graph, TSB_AD.models.PCA"
    touch "$DETECTORS_STAMP"
fi

#!/usr/bin/env bash
# Isolated environment with the TSB-AD reference package (metrics, find_length_rank, peer detectors).
# TSB-AD pins numpy<2, which clashes with the project's environment, so it lives in its own venv
# and tests talk to it through a subprocess. Idempotent: a stamp file records a finished install.
set -euo pipefail
VENV=${1:-.venv-tsbad}
STAMP="$VENV/.installed-tsbad-1.5"
if [ -f "$STAMP" ]; then exit 0; fi
python3.11 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
# torch==2.13.0 is the CPU build on this machine's disk; TSB-AD's own requirements would pull a CUDA build.
"$VENV/bin/pip" install -q "numpy<2" pandas scikit-learn scipy matplotlib tqdm statsmodels "torch==2.13.0"
"$VENV/bin/pip" install -q --no-deps "TSB-AD==1.5"
"$VENV/bin/python" -c "from TSB_AD.evaluation.metrics import get_metrics; from TSB_AD.utils.slidingWindows import find_length_rank"
touch "$STAMP"

"""CALM on streams: per-series ordered state, quantile-forecast flags, the judge, fine-tune and swap.

``engine`` holds the loop for one series key as plain Python (so it is tested without a runner);
``pipeline`` runs it inside an Apache Beam stateful ``DoFn`` keyed by series id, on any Beam runner.
"""

import contextlib

from anomalygraph.streaming.quiet import quiet_import

# first, so that Beam's import-time warning about optional GCP libraries does not configure logging;
# without the [stream] extra, pipeline.py's own import says what is missing
with contextlib.suppress(ImportError):
    quiet_import("apache_beam")

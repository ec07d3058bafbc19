"""``python -m anomalygraph.cli``: the same command as ``anomalygraph``."""

import sys

from anomalygraph.cli.main import main

sys.exit(main())

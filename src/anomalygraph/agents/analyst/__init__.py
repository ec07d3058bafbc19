"""The analyst role: how tool exchanges are shown to the model. The graph is ``graphs.analyst``."""

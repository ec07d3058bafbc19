"""LangGraph graphs: each in its own subpackage with ``state.py``, ``nodes.py`` and ``graph.py``."""

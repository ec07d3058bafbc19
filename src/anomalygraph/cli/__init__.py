"""The ``anomalygraph`` command: thin typer shells over the layers below (see ``main``)."""

from anomalygraph.cli.main import app, main

__all__ = ["app", "main"]

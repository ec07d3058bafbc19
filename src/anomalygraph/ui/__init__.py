"""The web workspace (``anomalygraph ui``): the analyst chat, files, diagnosis runs and rule banks in a
browser, over the same graphs, settings and SQLite threads as the terminal commands.

FastAPI serves one page (Jinja2, autoescaped) and a small JSON / NDJSON API; long work (a chat
turn, a diagnosis, a rule-bank run) streams its progress as one JSON object per line.
"""

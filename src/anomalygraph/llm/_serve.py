"""Entry point of the embedded server process: a clean environment, then llama.cpp's server.

``llama_cpp.server`` reads its settings from environment variables as well as from the command
line (``HOST``, ``PORT``, ``API_KEY``, ``MODEL``, ``CONFIG_FILE``, ... and every other setting by
its bare name), and ``HOST``/``PORT`` even override the flags. A user's unrelated ``API_KEY`` or
``PORT`` would silently change the server, so they are removed here before it starts.

Weight repacking into llama.cpp's extra buffer types is off unless ``ANOMALYGRAPH_LLM_REPACK_WEIGHTS=1``:
with it, llama-cpp-python 0.3.36 segfaults on the first prompt longer than a few tokens on CPUs
with AMX (measured on this project's machines; one-token prompts work, so the server looks healthy
until the first real request).

When started for one process (not by ``anomalygraph llm serve``), a watchdog thread stops the
server once that parent is gone, even if it died without running its exit handlers.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

PARENT_ENV = "ANOMALYGRAPH_LLM_PARENT_PID"
REPACK_ENV = "ANOMALYGRAPH_LLM_REPACK_WEIGHTS"


def _no_weight_repacking() -> None:
    """Model parameters with ``use_extra_bufts`` off, for every model the server loads."""
    import llama_cpp
    import llama_cpp.llama

    default = llama_cpp.llama_model_default_params

    def params():  # type: ignore[no-untyped-def]
        p = default()
        p.use_extra_bufts = False
        return p

    llama_cpp.llama.llama_cpp.llama_model_default_params = params


def _watch_parent(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
            os._exit(1)
        time.sleep(1.0)


def main() -> None:
    parent = os.environ.pop(PARENT_ENV, None)
    if parent and hasattr(os, "getppid"):
        if os.getppid() != int(parent):
            sys.exit(0)  # the parent died before we got here
        threading.Thread(target=_watch_parent, args=(int(parent),), daemon=True, name="parent-watchdog").start()

    if os.environ.pop(REPACK_ENV, "0") != "1":
        _no_weight_repacking()

    from llama_cpp.server.settings import Settings

    names = {name.lower() for name in Settings.model_fields} | {"config_file", "host", "port"}
    for key in list(os.environ):
        if key.lower() in names:
            del os.environ[key]

    from llama_cpp.server.__main__ import main as serve

    sys.argv[0] = "llama_cpp.server"
    serve()


if __name__ == "__main__":
    main()

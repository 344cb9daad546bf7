"""gunicorn settings of the reference app that need code (``--config python:...``).

A gunicorn worker is tempbench's grandchild: tempbench's parent-death signal reaches the
gunicorn master only, and a master that dies without stopping its workers (SIGKILL) would
leave them serving for ever with parent 1. Each worker is therefore tied to its master.
"""

from __future__ import annotations

import signal
from typing import Any

from tempbench.processes import tie_to_parent


def post_fork(server: Any, worker: Any) -> None:
    # SIGKILL: with its master gone nobody would stop a worker after its graceful timeout
    tie_to_parent(server.pid, signal.SIGKILL)

"""Celery worker app for the faults scenario: the CeleryStore's own app and task, with
``task_acks_late`` / ``task_reject_on_worker_lost`` chosen by the environment.

``CeleryStore`` always runs its workers with late acks; the faults scenario also needs
workers with Celery's default (early acks) to show what that loses. It starts
``python -m celery -A scenarios.fault_celery worker ...`` with the store's
``WorkerConfig`` in the environment plus ``TEMPBENCH_FAULT_ACKS_LATE=on|off``.
"""

from __future__ import annotations

import os
from typing import Any

ACKS_ENV = "TEMPBENCH_FAULT_ACKS_LATE"

_app: Any = None


def __getattr__(name: str) -> Any:
    """``celery -A scenarios.fault_celery`` asks for ``app``: built on demand, never on import."""
    global _app
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _app is None:
        from backends.celery_store import WorkerConfig, make_app

        _app = make_app(WorkerConfig.from_env())
        late = os.environ.get(ACKS_ENV, "on") == "on"
        _app.conf.update(task_acks_late=late, task_reject_on_worker_lost=late)
    return _app

"""Argument checks the commands run first: a bad name or an unusable place fails at once.

Each check raises :class:`typer.BadParameter`, which typer prints as a one-panel usage
error and turns into exit code 2, before any service is started or any file is written
(the output-folder check, which must create the folder to know it can, runs last). An
unknown name comes with the closest valid one (``did you mean disk?``) and the whole list.
"""

from __future__ import annotations

import difflib
import inspect
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import typer

from backends import REGISTRY, parse_spec, store_class
from tempbench import services

APP_STORES: tuple[str, ...] = ("null", "cookie", "disk", "encrypted-disk", "redis", "s3", "celery")
"""Registry names the reference app can serve (``serve``, ``load``): not the fault injector."""


def check_names(option: str, given: Iterable[str], valid: Sequence[str], what: str) -> None:
    """Refuse any of ``given`` that is not in ``valid``, suggesting the closest valid name."""
    for name in given:
        if name not in valid:
            raise typer.BadParameter(
                f"unknown {what} {name!r}{_suggestion(name, valid)}; valid: {', '.join(valid)}",
                param_hint=option,
            )


def check_backends(option: str, specs: Iterable[str], names: Sequence[str] | None = None) -> None:
    """Refuse a store spec whose name, variant (``name:variant``) or wrapped store
    (``wrapper+inner``) is unknown; ``names`` narrows the registry names allowed."""
    allowed = tuple(names or REGISTRY)
    valid = valid_specs(allowed)
    for spec in specs:
        if spec not in valid:
            known = names is not None and spec in valid_specs(tuple(REGISTRY))
            problem = f"backend {spec!r} cannot be used here" if known else f"unknown backend {spec!r}"
            shown = [s for s in valid if "+" not in s or s.endswith("+redis")]
            wrappers = sorted({s.split("+")[0] for s in valid if "+" in s})
            hint = "".join(f", {w}+<any other store>" for w in wrappers)
            raise typer.BadParameter(
                f"{problem}{_suggestion(spec, valid)}; valid: {', '.join(shown)}{hint}", param_hint=option
            )


def valid_specs(names: Sequence[str]) -> list[str]:
    """Every spec the registry names ``names`` accept: the bare name, ``name:variant`` for
    each variant its module lists (``VARIANTS``), ``wrapper+inner`` for each other store."""
    plain: list[str] = []
    wrappers: list[str] = []
    for name in names:
        cls = store_class(name)
        options = inspect.signature(cls.__init__).parameters
        plain.append(name)
        if "variant" in options:
            plain += [f"{name}:{v}" for v in getattr(sys.modules[cls.__module__], "VARIANTS", ())]
        if "inner" in options:
            wrappers.append(name)
    inner = [s for s in plain if parse_spec(s)[0] not in wrappers]
    return plain + [f"{w}+{s}" for w in wrappers for s in inner]


def check_service_urls(
    redis_url: str | None = None, s3_endpoint_url: str | None = None, broker_url: str | None = None
) -> None:
    """Refuse a service URL the user gave that is malformed or does not answer."""
    if redis_url:
        _check_answers("--redis-url", redis_url, lambda: _redis_error(redis_url))
    if s3_endpoint_url:
        _check_answers("--s3-endpoint-url", s3_endpoint_url, lambda: _http_error(s3_endpoint_url))
    if broker_url and not broker_url.startswith("memory"):
        _check_answers("--broker-url", broker_url, lambda: _broker_error(broker_url))


def check_writable_dir(option: str, path: Path) -> None:
    """Create ``path`` if needed and write a probe file in it, or refuse it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise typer.BadParameter(f"cannot write to {path}: {exc.strerror or exc}", param_hint=option) from None


# ----------------------------------------------------------------------------- helpers


def _suggestion(name: str, valid: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _check_answers(option: str, url: str, probe) -> None:
    try:
        error = probe()
    except ValueError as exc:  # redis-py and kombu refuse malformed URLs with ValueError
        error = f"not a valid URL ({exc})"
    if error:
        raise typer.BadParameter(f"{services.redact_url(url)}: {error}", param_hint=option)


def _redis_error(url: str) -> str | None:
    service = services.resolve_redis(url)
    if service.detail.get("reachable") is False:
        return f"no answer ({service.detail.get('error', 'unreachable')})"
    return None


def _http_error(url: str) -> str | None:
    import requests

    try:
        requests.get(url, timeout=services.PROBE_TIMEOUT_S)
    except requests.RequestException as exc:
        return f"no answer ({type(exc).__name__})"
    return None


def _broker_error(url: str) -> str | None:
    broker = services.resolve_broker(url)
    if broker.detail.get("reachable") is False or "(unreachable" in broker.name:
        return f"no answer ({broker.name})"
    return None

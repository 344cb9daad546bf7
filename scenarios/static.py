"""The ``static`` scenario: complexity and implementation-time PROXIES counted from the code.

Nothing here is an estimate typed by hand; every figure is counted from the backend's source
and its declared capabilities, and the report names them as proxies:

- ``code_lines``: code lines (not blank, not comments, not docstrings) of the strategy's
  module plus the ``backends`` modules it imports (``base`` and the registry excluded: every
  strategy shares them) plus, for a wrapper (``celery+redis``), the wrapped store's;
- ``external_services``: services the strategy needs beyond the app process, read from the
  client libraries its modules import (``redis`` -> redis-server, ``boto3`` -> an S3
  endpoint, ``celery`` -> worker processes and a broker, which defaults to the resolved
  Redis);
- ``config_knobs``: constructor options of the store class (and of the wrapped store's);
- ``moving_parts``: the external services plus a scheduled sweep job when the medium cannot
  expire data at the workload's TTL by itself (no native TTL, or a TTL granularity coarser
  than the TTL: S3 lifecycle rules count whole days);
- capability flags as declared (``native_ttl``, ``shared_across_instances``,
  ``encrypted_at_rest``, ``direct_upload``, ``async_processing``, ``max_object_bytes``,
  ``ttl_granularity_s``), for the report's static table.

Rows: scenario ``static``, operation ``source`` (counts) or ``capabilities`` (flags),
outcome ``all``, the lists behind each count and an ``evidence`` sentence in params.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import io
import logging
import math
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backends import REGISTRY, Capabilities, parse_spec, store_class
from scenarios.core import Row, RowStamp
from tempbench.evidence import Say, evidence_params

log = logging.getLogger(__name__)

SHARED_MODULES = frozenset({"backends", "backends.base"})
"""Modules every strategy uses; counting them would only add a constant to each."""

SERVICES_BY_IMPORT: dict[str, tuple[str, ...]] = {
    "redis": ("redis-server",),
    "boto3": ("S3 endpoint",),
    "botocore": ("S3 endpoint",),
    "celery": ("Celery worker processes", "redis-server"),
    "kombu": ("Celery worker processes",),
}
"""Top-level package a backend imports -> services it implies (Celery's broker defaults to
the resolved Redis, see ``backends.celery_store``)."""

SWEEP_JOB = "scheduled sweep job"
SOURCE_SERVICE = "source code (static count)"
CAPABILITY_FLAGS = ("native_ttl", "expires_on_read", "shared_across_instances", "encrypted_at_rest",
                    "direct_upload", "async_processing")


@dataclass(frozen=True)
class SourceProxies:
    """What :func:`source_proxies` counted for one store spec."""

    spec: str
    modules: tuple[str, ...]
    module_lines: dict[str, int]
    services: tuple[str, ...]
    knobs: tuple[str, ...]

    @property
    def code_lines(self) -> int:
        return sum(self.module_lines.values())


def source_proxies(spec: str) -> SourceProxies:
    """Count the code proxies of a store spec from the source files of its modules."""
    name, implied = parse_spec(spec)
    specs = [name] + ([parse_spec(implied["inner"])[0]] if "inner" in implied else [])
    modules: dict[str, None] = {}
    knobs: list[str] = []
    for store_name in specs:
        cls = store_class(store_name)
        for module in _backend_modules(REGISTRY[store_name].split(":")[0]):
            modules.setdefault(module, None)
        knobs += [f"{store_name}.{p}" for p in _constructor_options(cls)]
    module_lines = {m: count_code_lines(_source_path(m)) for m in modules}
    services: dict[str, None] = {}
    for module in modules:
        for package in _imported_packages(_source_path(module)):
            for service in SERVICES_BY_IMPORT.get(package, ()):
                services.setdefault(service, None)
    return SourceProxies(spec, tuple(modules), module_lines, tuple(services), tuple(knobs))


def count_code_lines(path: Path) -> int:
    """Lines holding code: not blank, not only a comment, not part of a docstring."""
    text = path.read_text(encoding="utf-8")
    docstring_lines: set[int] = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                docstring_lines.update(range(body[0].lineno, (body[0].end_lineno or body[0].lineno) + 1))
    code_lines: set[int] = set()
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
            tokenize.ENCODING, tokenize.ENDMARKER}
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type not in skip:
            code_lines.update(range(token.start[0], token.end[0] + 1))
    return len(code_lines - docstring_lines)


CLIENT_SIDE = frozenset({"cookie"})
"""Strategies whose medium is the browser: it drops expired cookies itself, so no server-side
job exists to run (the store's ``sweep()`` only models the browser's cookie jar)."""


def needs_sweep(caps: Capabilities, ttl_s: float, spec: str = "") -> str | None:
    """Why a scheduled sweep job must run for this medium at ``ttl_s`` (None: it need not)."""
    if parse_spec(spec)[0] in CLIENT_SIDE:
        return None
    if caps.ttl_granularity_s and caps.ttl_granularity_s > ttl_s:
        return Say("static_coarse_expiry", step_s=caps.ttl_granularity_s, ttl_s=ttl_s)
    if not caps.native_ttl:
        return Say("static_no_native_ttl")
    return None


class StaticScenario:
    """See the module docstring. Reads source files and capabilities; touches no medium."""

    name = "static"

    def prepare(self, ctx: Any) -> None:
        """Nothing to prepare: the scenario writes nothing to the store."""

    def run(self, ctx: Any) -> Iterator[Row]:
        # the figures come from the source files, not from the service behind the store: an
        # emulator serving the store must not mark them as emulated
        stamp = RowStamp(ctx.run_id, ctx.backend, SOURCE_SERVICE, False, self.name)
        yield from static_rows(stamp, ctx.backend, ctx.store.capabilities, ctx.workload.ttl_s)

    def cleanup(self, ctx: Any) -> None:
        """Nothing to clean up."""


def static_rows(stamp: Any, spec: str, caps: Capabilities, ttl_s: float) -> Iterator[Row]:
    """The static rows of one store spec through a ``scenarios.core.RowStamp``."""
    proxies = source_proxies(spec)
    sweep_reason = needs_sweep(caps, ttl_s, spec)
    parts = list(proxies.services) + ([SWEEP_JOB] if sweep_reason else [])
    lines_detail = ", ".join(f"{_relative(m)}: {n}" for m, n in proxies.module_lines.items())
    yield stamp.row("source", "all", "code_lines", proxies.code_lines, "lines", {
        "modules": list(proxies.modules),
        **evidence_params(Say("static_code_lines", detail=lines_detail)),
    })
    yield stamp.row("source", "all", "external_services", len(proxies.services), "services", {
        "services": list(proxies.services),
        **evidence_params(Say("static_services", services=list(proxies.services) or Say("static_none"))),
    })
    yield stamp.row("source", "all", "config_knobs", len(proxies.knobs), "options", {
        "options": list(proxies.knobs),
        **evidence_params(Say("static_knobs", options=list(proxies.knobs) or Say("static_none"))),
    })
    yield stamp.row("source", "all", "moving_parts", len(parts), "parts", {
        "parts": parts,
        "ttl_s": ttl_s,
        **evidence_params(_moving_parts(list(proxies.services), sweep_reason)),
    })
    yield stamp.row("source", "all", "needs_scheduled_sweep", 1.0 if sweep_reason else 0.0, "flag", {
        "ttl_s": ttl_s,
        **evidence_params(sweep_reason or Say(
            "static_browser_expires" if parse_spec(spec)[0] in CLIENT_SIDE else "static_medium_expires")),
    })
    for flag in CAPABILITY_FLAGS:
        yield stamp.row("capabilities", "all", flag, 1.0 if getattr(caps, flag) else 0.0, "flag", {})
    limit = caps.max_object_bytes
    yield stamp.row("capabilities", "all", "max_object_bytes", math.inf if limit is None else limit,
                    "bytes", evidence_params(Say("static_limit_declared" if limit else "static_no_limit")))
    yield stamp.row("capabilities", "all", "ttl_granularity_s", caps.ttl_granularity_s, "s",
                    {"notes": list(caps.notes)})


# ----------------------------------------------------------------------------- helpers


def _moving_parts(services: list[str], sweep_reason: str | None) -> Say:
    """``redis, scheduled sweep job; <why>`` (the sweep job, when one must run, comes last)."""
    if not sweep_reason:
        return Say("static_parts", parts=services or Say("static_nothing"))
    if not services:
        return Say("static_sweep_only", reason=sweep_reason)
    return Say("static_parts_sweep", parts=services, reason=sweep_reason)


def _backend_modules(module: str) -> list[str]:
    """``module`` and the ``backends.*`` modules it imports, recursively (shared ones excluded)."""
    seen: dict[str, None] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen or name in SHARED_MODULES:
            continue
        seen[name] = None
        tree = ast.parse(_source_path(name).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("backends"):
                if node.module == "backends":
                    todo += [f"backends.{a.name}" for a in node.names if _is_module(f"backends.{a.name}")]
                else:
                    todo.append(node.module)
            elif isinstance(node, ast.Import):
                todo += [a.name for a in node.names if a.name.startswith("backends.")]
    return list(seen)


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def _imported_packages(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


def _constructor_options(cls: type) -> list[str]:
    params = inspect.signature(cls.__init__).parameters.values()
    return [p.name for p in params
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def _source_path(module: str) -> Path:
    path = inspect.getsourcefile(importlib.import_module(module))
    if path is None:
        raise FileNotFoundError(f"no source file for module {module}")
    return Path(path)


def _relative(module: str) -> str:
    return module.replace(".", "/") + ".py"


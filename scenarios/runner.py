"""The scenario runner: runs every scenario against every backend, prepare -> run -> cleanup.

How to add a scenario
---------------------
1. Write ``scenarios/<name>.py`` with a class that has a ``name`` and three methods::

       from scenarios.core import Recorder
       from scenarios.runner import ScenarioContext

       class LeakScenario:
           name = "leak"

           def prepare(self, ctx: ScenarioContext) -> None:
               ...  # build payloads; ctx.store is ready and shared by every scenario

           def run(self, ctx: ScenarioContext) -> Iterable[Row]:
               rec = Recorder()
               rec.start(warmup_s=0)
               res = rec.call("upload", ctx.store.put, "s1", "original", data, 60, nbytes=len(data))
               ...   # res.outcome is "ok", "not_found", "quota"...: StoreErrors never escape
               rec.stop()
               yield from ctx.summarize(rec.snapshot(), {"size_bytes": len(data)})
               yield ctx.row("sweep", "ok", "leftover_objects", n, "objects", {"evidence": "..."})
               if ctx.stop.is_set(): return   # Ctrl-C: stop early, rows yielded so far are kept

           def cleanup(self, ctx: ScenarioContext) -> None:
               ...  # delete everything the scenario wrote: the runner checks the footprint

2. Register it: ``SCENARIOS`` below already maps ``leak``, ``security`` and ``faults`` to
   ``scenarios.<name>:<Name>Scenario``; a new name needs one line there. A registered module
   that does not import yet is reported as unavailable, not fatal.

Rules: time store calls only through :class:`scenarios.core.Recorder` (no stopwatch code in a
scenario); yield :class:`scenarios.core.Row` objects built with ``ctx.row(...)`` /
``ctx.summarize(...)`` (the runner appends them to ``results.csv`` as they come); report
progress with ``ctx.progress(fraction, note)``; check ``ctx.stop`` in loops; use
``ctx.make_store(**overrides)`` for an extra, separately configured instance (close it
yourself); ``ctx.store_factory`` is picklable for ``multiprocessing`` (spawn: build with
``factory.in_child()`` in the child so it reaches the same services); put temporary
files under ``ctx.scratch``; read your settings from ``ctx.workload.section("<name>")``.
A scenario that does not apply to a backend returns a reason from the optional
``skip_reason(ctx) -> str | None``; it is then recorded as skipped (``ctx.reads_return_data``
is False for the null store, whose reads are zeros). Start ``multiprocessing`` spawn
children with :func:`start_spawned` (they then skip re-importing the CLI). In a test,
``ScenarioContext.standalone(StoreFactory("disk", {"root": ...}), workload, tmp_path)``
gives a context without a runner.

The runner reads ``ctx.store.footprint()`` before ``prepare`` and after ``cleanup`` and
writes rows ``leftover_objects`` / ``leftover_bytes`` (operation ``cleanup``, outcome
``pass`` when the medium is back where it was, else ``fail``).
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import shutil
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from backends import HARNESS_STORES, ServiceInfo, Store, get_store, parse_spec, store_class
from scenarios.core import Row, RowStamp, RunFolder, Snapshot, safe_name, summary_rows
from scenarios.workload import Workload
from tempbench.evidence import Say, evidence_params
from tempbench.processes import log_errors
from tempbench.schema import ALL

log = logging.getLogger(__name__)

ROUND_PARAM = "round"
"""The row param naming the round of a scenario measured several times (reports read it)."""

SCENARIOS: dict[str, str] = {
    "load": "scenarios.load:LoadScenario",
    "concurrency": "scenarios.concurrency:ConcurrencyScenario",
    "leak": "scenarios.leak:LeakScenario",
    "security": "scenarios.security:SecurityScenario",
    "faults": "scenarios.faults:FaultsScenario",
    "capacity": "scenarios.capacity:CapacityScenario",
    "static": "scenarios.static:StaticScenario",
    "app_path": "scenarios.app_path:AppPathScenario",
}
"""Scenario name -> ``module:Class``; imported on first use."""


@runtime_checkable
class Scenario(Protocol):
    """What the runner drives. A fresh instance is made per backend x scenario."""

    name: str

    def prepare(self, ctx: ScenarioContext) -> None: ...

    def run(self, ctx: ScenarioContext) -> Iterable[Row]: ...

    def cleanup(self, ctx: ScenarioContext) -> None: ...


@dataclass(frozen=True)
class StoreFactory:
    """Builds stores of one backend; picklable, so spawned processes can build their own.

    ``options`` are the constructor options (disk root, key...); ``factory(**overrides)``
    builds a new, separately configured instance. ``child_env`` holds what a *spawned*
    process needs to reach the same services as this one (``REDIS_URL`` of the private
    redis-server, ``S3_ENDPOINT_URL`` of the moto server...): call :meth:`in_child` there.
    """

    spec: str
    options: dict[str, Any] = field(default_factory=dict)
    child_env: dict[str, str] = field(default_factory=dict)

    def __call__(self, **overrides: Any) -> Store:
        return get_store(self.spec, **{**self.options, **overrides})

    def in_child(self, **overrides: Any) -> Store:
        """Build a store inside a spawned process: ``child_env`` is applied first."""
        os.environ.update(self.child_env)
        return self(**overrides)

    @property
    def has_root(self) -> bool:
        """True for stores kept in a directory (their ``root`` option)."""
        return "root" in self.options


@dataclass
class BackendTarget:
    """One backend of a run: its factory, or the reason it is skipped."""

    spec: str
    factory: StoreFactory | None = None
    skipped: str | None = None


@dataclass
class ScenarioContext:
    """Everything a scenario may use for one backend."""

    run_id: str
    scenario: str
    backend: str
    store: Store
    store_factory: StoreFactory
    service: ServiceInfo
    workload: Workload
    folder: RunFolder
    seed: int
    scratch: Path
    stop: threading.Event
    progress: Callable[[float, str], None] = lambda fraction, note="": None
    params: dict[str, Any] = field(default_factory=dict)
    """Run-wide options from the CLI (processes, find_max, slo, shared_root...)."""
    run_state: dict[str, Any] = field(default_factory=dict)
    """Shared by every backend x scenario of the run (e.g. ``harness_ceiling``)."""
    round: int | None = None
    """Which round of a scenario measured several times in the run (``workload.rounds``);
    the runner stamps it on every row as ``params["round"]``."""

    @classmethod
    def standalone(cls, factory: StoreFactory, workload: Workload, folder: Path | str,
                   scenario: str = "", *, seed: int = 0, params: dict[str, Any] | None = None,
                   store: Store | None = None) -> ScenarioContext:
        """A context outside a :class:`Runner` (tests, notebooks): builds the store unless
        given one; the caller closes ``ctx.store``."""
        store = store if store is not None else factory()
        run = RunFolder(folder)
        scratch = run.path / "scratch"
        scratch.mkdir(parents=True, exist_ok=True)
        return cls(run_id=run.run_id, scenario=scenario, backend=factory.spec, store=store,
                   store_factory=factory, service=store.service(), workload=workload,
                   folder=run, seed=seed, scratch=scratch, stop=threading.Event(),
                   params=dict(params or {}))

    @property
    def stamp(self) -> RowStamp:
        return RowStamp(self.run_id, self.backend, self.service.name, self.service.emulated,
                        self.scenario)

    @property
    def is_harness_store(self) -> bool:
        """The null/faulty stores test the harness; null returns zeros on read."""
        return parse_spec(self.backend)[0] in HARNESS_STORES

    @property
    def reads_return_data(self) -> bool:
        """False for the null store (and wrappers of it): its reads are zeros, not the data."""
        return returns_stored_bytes(self.store)

    def make_store(self, **overrides: Any) -> Store:
        """A new instance of this backend (the caller closes it)."""
        return self.store_factory(**overrides)

    def row(self, operation: str, outcome: str, metric: str, value: float, unit: str,
            params: dict[str, Any] | None = None) -> Row:
        """A row stamped with this run, backend, service and scenario."""
        return self.stamp.row(operation, outcome, metric, value, unit, params)

    def summarize(self, snapshot: Snapshot, params: dict[str, Any] | None = None,
                  *, series: bool = True) -> list[Row]:
        """Save the snapshot's raw histograms and return its summary rows."""
        if self.round is not None:  # one histogram file per round, not the last round's only
            params = {**(params or {}), ROUND_PARAM: self.round}
        self.folder.save_histograms(snapshot, self.stamp, params)
        return summary_rows(snapshot, self.stamp, params, series=series)


def canonical_spec(spec: str) -> str:
    """The spec a run records: a store with variants named without one is recorded under its
    default variant (``encrypted-disk`` -> ``encrypted-disk:aesgcm-stream``), so its rows meet
    the report's column for exactly that store. Unknown names are left for the caller to refuse."""
    if "+" in spec:
        outer, inner = spec.split("+", 1)
        return f"{outer}+{canonical_spec(inner)}"
    if ":" in spec:
        return spec
    try:
        cls = store_class(spec)
    except KeyError:
        return spec
    variant = inspect.signature(cls).parameters.get("variant")
    if variant is not None and isinstance(variant.default, str):
        return f"{spec}:{variant.default}"
    return spec


def returns_stored_bytes(store: Store | None) -> bool:
    """False for the null store and any store wrapping it (``.inner``): reads are zeros."""
    while store is not None:
        if store.name == "null":
            return False
        store = getattr(store, "inner", None)
    return True


def get_scenario(name: str) -> Scenario:
    """A fresh instance of the scenario registered under ``name``."""
    try:
        target = SCENARIOS[name]
    except KeyError:
        raise KeyError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}") from None
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)()


def available_scenarios() -> dict[str, str | None]:
    """Scenario name -> None when it imports, else why not (e.g. not written yet)."""
    out: dict[str, str | None] = {}
    for name in SCENARIOS:
        try:
            get_scenario(name)
            out[name] = None
        except Exception as exc:  # a missing or broken module must not stop the others
            out[name] = f"{type(exc).__name__}: {exc}"
    return out


@dataclass
class ScenarioResult:
    """How one backend x scenario ended (recorded in run.json)."""

    backend: str
    scenario: str
    status: str
    """ok, interrupted, failed, skipped."""
    rows: int = 0
    detail: str = ""
    duration_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


ProgressHook = Callable[[str, str, float, str], None]
"""(backend, scenario, fraction done, note) -> None; the CLI draws the progress bars."""


@dataclass
class Runner:
    """Runs ``scenarios`` over ``targets`` into ``folder``.

    Backends run one after another; each backend's store is built once and shared by its
    scenarios. A store that cannot be built, or a scenario that raises, is recorded and the
    run continues. Setting ``stop`` (Ctrl-C) ends the current scenario early, runs its
    cleanup and skips the rest.
    """

    scenarios: list[str]
    targets: list[BackendTarget]
    workload: Workload
    folder: RunFolder
    seed: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    on_progress: ProgressHook = lambda backend, scenario, fraction, note: None
    on_result: Callable[[ScenarioResult], None] = lambda result: None
    """Called once per finished (backend, scenario): the CLI prints a line per result off a TTY."""
    run_state: dict[str, Any] = field(default_factory=dict)
    results: list[ScenarioResult] = field(default_factory=list)
    skipped_backends: dict[str, str] = field(default_factory=dict)
    services: dict[str, dict[str, Any]] = field(default_factory=dict)

    def run(self) -> list[ScenarioResult]:
        for target in self.targets:
            if self.stop.is_set():
                break
            self.run_backend(target)
        self.folder.write_parquet()
        shutil.rmtree(self.folder.path / "scratch", ignore_errors=True)
        return self.results

    def run_backend(self, target: BackendTarget) -> None:
        if target.factory is None:
            self._skip_backend(target.spec, target.skipped or "no store factory")
            return
        try:
            store = target.factory()
            service = store.service()
        except Exception as exc:  # a backend that cannot start is reported, not fatal
            log.warning("backend %s skipped: %s", target.spec, exc)
            self._skip_backend(target.spec, f"{type(exc).__name__}: {exc}")
            return
        self.services[target.spec] = {"service": service.name, "emulated": service.emulated,
                                      "detail": service.detail}
        try:
            for name in self.scenarios:
                if self.stop.is_set():
                    break
                self._record(self.run_one(name, target, store, service))
                self.folder.write_parquet()
        finally:
            try:
                store.close()
            except Exception as exc:  # closing must not hide the measurements
                log.warning("closing %s failed: %s", target.spec, exc)

    def run_one(self, name: str, target: BackendTarget, store: Store,
                service: ServiceInfo) -> ScenarioResult:
        """Run one scenario on one backend: ``workload.rounds`` times when it is one of the
        ``round_scenarios`` (each round prepares, runs and cleans up on its own)."""
        rounds = self.workload.rounds if name in self.workload.round_scenarios else 1
        if rounds == 1:
            return self._run_round(name, target, store, service, None)
        results: list[ScenarioResult] = []
        for n in range(1, rounds + 1):
            if self.stop.is_set():
                break
            results.append(self._run_round(name, target, store, service, n))
            if results[-1].status == "skipped":
                return results[-1]
        worst = next((r for r in results if r.status != "ok"), results[-1])
        return ScenarioResult(target.spec, name, worst.status, sum(r.rows for r in results),
                              worst.detail, round(sum(r.duration_s for r in results), 2))

    def _run_round(self, name: str, target: BackendTarget, store: Store,
                   service: ServiceInfo, round_no: int | None) -> ScenarioResult:
        assert target.factory is not None
        tag = f"round {round_no}/{self.workload.rounds}: " if round_no is not None else ""
        scratch = self.folder.path / "scratch" / safe_name(target.spec) / name
        scratch.mkdir(parents=True, exist_ok=True)
        ctx = ScenarioContext(
            run_id=self.folder.run_id, scenario=name, backend=target.spec, store=store,
            store_factory=target.factory, service=service, workload=self.workload,
            folder=self.folder, seed=self.seed, scratch=scratch, stop=self.stop,
            progress=lambda fraction, note="": self.on_progress(target.spec, name, fraction, tag + note),
            params=self.params, run_state=self.run_state, round=round_no,
        )
        try:
            scenario = get_scenario(name)
        except Exception as exc:
            return ScenarioResult(target.spec, name, "skipped", detail=f"unavailable: {exc}")
        reason = getattr(scenario, "skip_reason", lambda ctx: None)(ctx)
        if reason:
            ctx.progress(1.0, f"skipped: {reason}")
            return ScenarioResult(target.spec, name, "skipped", detail=reason)
        before = _footprint(store)
        errors_before = _service_errors()
        began = time.monotonic()
        written = 0
        status, detail = "ok", ""
        try:
            ctx.progress(0.0, "prepare")
            scenario.prepare(ctx)
            batch: list[Row] = []
            try:
                for row in scenario.run(ctx):
                    batch.append(_stamp_round(row, round_no))
                    if len(batch) >= 500:
                        written += self.folder.append(batch)
                        batch = []
            finally:  # rows yielded before a failure are measurements too
                written += self.folder.append(batch)
        except Exception as exc:  # one failing scenario must not lose the run
            log.error("%s on %s failed:\n%s", name, target.spec, traceback.format_exc())
            status, detail = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            try:
                ctx.progress(1.0, "cleanup")
                scenario.cleanup(ctx)
            except Exception as exc:
                log.error("%s cleanup on %s failed: %s", name, target.spec, exc)
                status, detail = "failed", detail or f"cleanup: {type(exc).__name__}: {exc}"
        if status == "ok" and self.stop.is_set():
            status = "interrupted"
        written += self.folder.append([_stamp_round(r, round_no) for r in _leftover_rows(ctx, before, _footprint(store))])
        written += self.folder.append([_stamp_round(r, round_no) for r in _server_error_rows(ctx, errors_before, _service_errors())])
        shutil.rmtree(scratch, ignore_errors=True)
        return ScenarioResult(target.spec, name, status, written, detail,
                              round(time.monotonic() - began, 2))

    def _skip_backend(self, spec: str, reason: str) -> None:
        self.skipped_backends[spec] = reason
        for name in self.scenarios:
            self.on_progress(spec, name, 1.0, f"skipped: {reason}")
            self._record(ScenarioResult(spec, name, "skipped", detail=reason))

    def _record(self, result: ScenarioResult) -> None:
        self.results.append(result)
        self.on_result(result)


def start_spawned(processes: Iterable[Any]) -> None:
    """Start ``multiprocessing`` spawn processes without re-running the parent's main module.

    Spawn re-imports the parent's ``__main__`` in every child; under the ``tempbench``
    console script that is the whole CLI (reports, pandas, matplotlib: seconds per child on
    a busy 2-core machine). Scenario children run module-level functions of ``scenarios.*``
    and need nothing from ``__main__``, so its identity is hidden while they start: each
    child is a fresh interpreter importing only what its target needs.
    """
    main = sys.modules["__main__"]
    saved = {name: main.__dict__[name] for name in ("__file__", "__spec__") if name in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__spec__ = None
    try:
        for process in processes:
            process.start()
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


def run_threads(targets: Sequence[Callable[[], object]], names: Sequence[str] = ()) -> None:
    """Run each target in a daemon thread of its own and wait for all of them.

    The first error any target raised is then raised again in the caller's thread: a
    harness bug must not pass silently. ``names`` (optional) names the threads, one each.
    """
    errors: list[BaseException] = []

    def guarded(target: Callable[[], object]) -> None:
        try:
            target()
        except BaseException as exc:  # re-raised below, in the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(target,), daemon=True,
                                name=names[i] if names else None)
               for i, target in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def _stamp_round(row: Row, round_no: int | None) -> Row:
    return row if round_no is None else replace(row, params={**row.params, ROUND_PARAM: round_no})


def _footprint(store: Store) -> tuple[int, int] | str:
    try:
        fp = store.footprint()
        return fp.objects, fp.bytes
    except Exception as exc:  # a footprint that cannot be read is reported as such
        return f"{type(exc).__name__}: {exc}"


def _service_errors() -> dict[str, int]:
    """Error lines per service in the services' logs so far (``tempbench.processes``)."""
    return {service: found.count for service, found in log_errors().items()}


def _server_error_rows(ctx: ScenarioContext, before: dict[str, int],
                       after: dict[str, int]) -> list[Row]:
    """What failed on the server side while this backend x scenario ran, one row per service.

    Backends run one after another, so what a service logged meanwhile belongs to this
    scenario; its figures include those requests (a client may have retried them).
    """
    rows = []
    for service, count in sorted(after.items()):
        new = count - before.get(service, 0)
        if new <= 0:
            continue
        what = "requests answered with HTTP 5xx" if service == "moto" else "error lines"
        rows.append(ctx.row(ALL, "error", "server_errors", new,
                            "requests" if service == "moto" else "lines",
                            {"service": service, "log": f"logs/{service}.log",
                             "evidence": f"{service}: {new} {what} while {ctx.scenario} ran on "
                                         f"{ctx.backend}; this scenario's figures include them "
                                         f"(see logs/{service}.log)"}))
    return rows


def _leftover_rows(ctx: ScenarioContext, before: tuple[int, int] | str,
                   after: tuple[int, int] | str) -> list[Row]:
    if isinstance(before, str) or isinstance(after, str):
        evidence = evidence_params(Say("run_footprint_unreadable", before=str(before), after=str(after)))
        return [ctx.row("cleanup", "not_verifiable", metric, 0, unit, evidence)
                for metric, unit in (("leftover_objects", "objects"), ("leftover_bytes", "bytes"))]
    objects, nbytes = after[0] - before[0], after[1] - before[1]
    outcome = "pass" if objects == 0 and nbytes == 0 else "fail"
    params = {
        "before_objects": before[0], "before_bytes": before[1],
        "after_objects": after[0], "after_bytes": after[1],
        **evidence_params(Say("run_footprint", objects_before=before[0], bytes_before=before[1],
                              objects_after=after[0], bytes_after=after[1])),
    }
    return [ctx.row("cleanup", outcome, "leftover_objects", objects, "objects", params),
            ctx.row("cleanup", outcome, "leftover_bytes", nbytes, "bytes", params)]


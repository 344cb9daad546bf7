"""Throughput ratios for benchmarks: record each measurement, print ratios at the end.

A benchmark calls ``record_throughput(group, label, nbytes, reference=...)`` right after
``benchmark(...)``; at the end of the session every label of a group is printed with its
throughput (bytes / median time; calls / median time when ``nbytes`` is 0) and its ratio to
each reference of the same group, all measured in the same run. Nothing is asserted on the figures: machines differ, ratios hold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

MB = 1_000_000


@dataclass(frozen=True)
class Throughput:
    group: str
    label: str
    nbytes: int
    median_s: float
    reference: bool

    @property
    def mb_per_s(self) -> float:
        return self.nbytes / self.median_s / MB

    @property
    def rate(self) -> str:
        """MB/s when the call moves bytes, else calls per second (``nbytes=0``: deletes...)."""
        return f"{self.mb_per_s:9.1f} MB/s " if self.nbytes else f"{1 / self.median_s:9.1f} ops/s"

    def ratio_to(self, other: Throughput) -> float:
        """This one's throughput over the other's (MB/s when both move bytes, else calls/s)."""
        if self.nbytes and other.nbytes:
            return self.mb_per_s / other.mb_per_s
        return other.median_s / self.median_s


_MEASURED = pytest.StashKey[list[Throughput]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_MEASURED] = []


@pytest.fixture
def record_throughput(benchmark, request: pytest.FixtureRequest) -> Callable[..., None]:
    """``record(group, label, nbytes, reference=False, seconds=None)``, called after
    ``benchmark(...)``; ``seconds`` records another time than the benchmark's median (a
    best-of-rounds figure, or a reference timed beside the benchmark, round by round)."""

    def record(group: str, label: str, nbytes: int, reference: bool = False,
               seconds: float | None = None) -> None:
        stats = getattr(benchmark, "stats", None)
        if stats is None:  # --benchmark-disable: nothing was measured
            return
        median = stats.stats.median if seconds is None else seconds
        request.config.stash[_MEASURED].append(Throughput(group, label, nbytes, median, reference))

    return record


def ratio_lines(measured: list[Throughput]) -> list[str]:
    """One line per label: throughput, then its ratio to every other reference of its group."""
    lines: list[str] = []
    for group in dict.fromkeys(m.group for m in measured):
        rows = [m for m in measured if m.group == group]
        references = [m for m in rows if m.reference]
        lines.append(f"{group}:")
        for row in rows:
            ratios = ", ".join(
                f"{row.ratio_to(ref):.2f}x {ref.label}" for ref in references if ref is not row
            )
            lines.append(f"  {row.label:<32} {row.rate}" + (f"  = {ratios}" if ratios else ""))
    return lines


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    measured = config.stash.get(_MEASURED, [])
    if not measured:
        return
    terminalreporter.section("throughput ratios (median times, measured in this run)")
    for line in ratio_lines(measured):
        terminalreporter.write_line(line)

"""Charts drawn from the tidy table (and the raw HDR histograms), returned as PNG bytes.

Each function returns None when the run has no rows for its chart, so the report says
"not run" instead of drawing an empty frame. Emulated series are dashed and labelled.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: charts are rendered to PNG only
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from reports.cost import CostReport  # noqa: E402

PERCENTILE_LABELS = (("latency_p50", 50.0), ("latency_p95", 95.0), ("latency_p99", 99.0),
                     ("latency_p999", 99.9), ("latency_max", 99.99))
CDF_PERCENTILES = (0, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 100)
FIGSIZE = (6.4, 3.6)
DPI = 100


class Palette:
    """One colour per backend, stable across every chart of a report."""

    def __init__(self, backends: Sequence[str]) -> None:
        cmap = plt.get_cmap("tab10")
        self._colors = {b: cmap(i % 10) for i, b in enumerate(backends)}

    def __call__(self, backend: str) -> Any:
        if backend not in self._colors:
            self._colors[backend] = plt.get_cmap("tab10")(len(self._colors) % 10)
        return self._colors[backend]


def throughput_vs_size(
    frame: pd.DataFrame, operations: Iterable[str], title: str, palette: Palette, emulated_word: str,
    mix_title: str | None = None,
) -> bytes | None:
    """MB/s per file size and backend; one bar per backend when the run mixed sizes
    (``mix_title`` then replaces ``title``, so the chart never claims a size axis it lacks)."""
    ops = set(operations)
    rows = frame[(frame.scenario == "load") & (frame.metric == "mb_per_s") & (frame.outcome == "ok")
                 & frame.operation.isin(ops)]
    if rows.empty:
        return None
    rows = rows.assign(size=[_num(p.get("size_bytes")) for p in rows.params])
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    if rows["size"].notna().any():
        rows = rows[rows["size"].notna()]
        for backend, group in rows.groupby("backend", sort=False):
            series = group.groupby("size")["value"].mean().sort_index()
            emulated = bool(group.emulated.any())
            ax.plot(series.index / 2**20, series.values, marker="o", color=palette(backend),
                    linestyle="--" if emulated else "-",
                    label=f"{backend} ({emulated_word})" if emulated else backend)
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g} MiB"))
        ax.set_xlabel("file size")
    else:  # a mixed-size workload: one bar per backend
        title = mix_title or title
        series = rows.groupby("backend", sort=False)["value"].mean()
        emulated = rows.groupby("backend", sort=False)["emulated"].any()
        ax.bar(range(len(series)), series.values, color=[palette(b) for b in series.index],
               hatch=["//" if emulated[b] else None for b in series.index])
        ax.set_xticks(range(len(series)),
                      [f"{b} ({emulated_word})" if emulated[b] else b for b in series.index],
                      fontsize=8, rotation=30, ha="right")
    ax.set_ylabel("MB/s (ok operations)")
    ax.set_title(title, fontsize=11)
    ax.grid(True, alpha=0.3)
    _legend(ax)
    return _png(fig)


def latency_cdf(
    histograms: Iterable[Mapping[str, Any]],
    operations: Iterable[str],
    title: str,
    palette: Palette,
    emulated_backends: set[str],
    emulated_word: str,
) -> bytes | None:
    """Percentile distribution per backend from the raw HDR histograms (sizes merged)."""
    ops = set(operations)
    merged: dict[str, Any] = {}
    for rec in histograms:
        if (rec.get("scenario") != "load" or rec.get("operation") not in ops
                or rec.get("outcome") != "ok" or rec.get("latency") != "service"):
            continue
        hist = rec["hist"]
        if rec["backend"] in merged:
            merged[rec["backend"]].add(hist)
        else:
            merged[rec["backend"]] = hist
    merged = {b: h for b, h in merged.items() if h.get_total_count()}
    if not merged:
        return None
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    for backend, hist in merged.items():
        xs = [_nines(p) for p in CDF_PERCENTILES if p < 100]
        ys = [hist.get_value_at_percentile(p) / 1e6 for p in CDF_PERCENTILES if p < 100]
        emulated = backend in emulated_backends
        ax.plot(xs, ys, color=palette(backend), linestyle="--" if emulated else "-",
                label=f"{backend} ({emulated_word})" if emulated else backend)
    _nines_axis(ax)
    ax.set_yscale("log")
    ax.set_ylabel("latency (ms)")
    ax.set_title(title, fontsize=11)
    ax.grid(True, alpha=0.3, which="both")
    _legend(ax)
    return _png(fig)


def latency_percentiles(
    frame: pd.DataFrame, operations: Iterable[str], title: str, palette: Palette, emulated_word: str
) -> bytes | None:
    """The same picture from the summary rows, when no raw histograms were saved."""
    ops = set(operations)
    names = dict(PERCENTILE_LABELS)
    rows = frame[(frame.scenario == "load") & (frame.outcome == "ok") & frame.operation.isin(ops)
                 & frame.metric.isin(names)]
    if rows.empty:
        return None
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    for backend, group in rows.groupby("backend", sort=False):
        series = group.groupby("metric")["value"].max()
        points = sorted((_nines(names[m]), v) for m, v in series.items())
        emulated = bool(group.emulated.any())
        ax.plot([p for p, _ in points], [v for _, v in points], marker="o", color=palette(backend),
                linestyle="--" if emulated else "-",
                label=f"{backend} ({emulated_word})" if emulated else backend)
    _nines_axis(ax)
    ax.set_yscale("log")
    ax.set_ylabel("latency (ms, worst size)")
    ax.set_title(title, fontsize=11)
    ax.grid(True, alpha=0.3, which="both")
    _legend(ax)
    return _png(fig)


def footprint_over_time(
    frame: pd.DataFrame, title: str, palette: Palette, emulated_word: str, sweep_words: Mapping[bool, str]
) -> bytes | None:
    rows = frame[(frame.scenario == "leak") & (frame.metric == "footprint_bytes")]
    if rows.empty:
        return None
    rows = rows.assign(
        t=[_num(p.get("t_s")) for p in rows.params],
        sweep=[_flag(p.get("sweep")) for p in rows.params],
    )
    rows = rows[rows.t.notna()]
    if rows.empty:
        return None
    panels = sorted(rows.sweep.dropna().unique().tolist()) or [None]
    fig, axes = plt.subplots(1, len(panels), figsize=(FIGSIZE[0] * 1.8, FIGSIZE[1]), dpi=DPI,
                             sharey=True, squeeze=False)
    for ax, sweep in zip(axes[0], panels, strict=True):
        part = rows if sweep is None else rows[rows.sweep == sweep]
        for backend, group in part.groupby("backend", sort=False):
            series = group.groupby("t")["value"].mean().sort_index()
            emulated = bool(group.emulated.any())
            ax.plot(series.index, series.values / 2**20, color=palette(backend),
                    linestyle="--" if emulated else "-",
                    label=f"{backend} ({emulated_word})" if emulated else backend)
        ax.set_xlabel("s")
        ax.grid(True, alpha=0.3)
        if sweep is not None:
            ax.set_title(sweep_words[bool(sweep)], fontsize=10)
    axes[0][0].set_ylabel("MiB on the medium")
    _legend(axes[0][-1])
    fig.suptitle(title, fontsize=11)
    return _png(fig)


def cost_vs_scale(costs: CostReport, title: str, palette: Palette, xlabel: str) -> bytes | None:
    lines: dict[str, list[tuple[int, float]]] = {}
    for (backend, scale), estimate in costs.estimates.items():
        if estimate.available:
            lines.setdefault(backend, []).append((scale, estimate.total_usd))
    if not lines:
        return None
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    for backend, points in lines.items():
        points.sort()
        ax.plot([s for s, _ in points], [max(v, 1e-3) for _, v in points], marker="o",
                color=palette(backend), label=backend)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{costs.prices.currency} / month (total)")
    ax.set_title(title, fontsize=11)
    ax.grid(True, alpha=0.3, which="both")
    _legend(ax)
    return _png(fig)


# ----------------------------------------------------------------------------- helpers


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _legend(ax: Any) -> None:
    """Legend outside the plot area, so it never hides a line."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def _nines(pct: float) -> float:
    return -math.log10(max(1e-6, 1 - pct / 100))


def _nines_axis(ax: Any) -> None:
    ticks = [50, 90, 99, 99.9, 99.99]
    ax.set_xticks([_nines(p) for p in ticks], [f"{p:g}%" for p in ticks])
    ax.set_xlabel("percentile")


def _num(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _flag(value: Any) -> bool | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    return str(value).lower() in ("true", "1", "yes", "on")

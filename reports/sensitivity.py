"""How far a cost rating stands from its thresholds: the factor by which a decisive workload
assumption (sessions per month, peak-to-average, file size) must move, up or down, before the
same measurements priced under the edited profile get another rating.

The profile values are assumptions, not measurements (``reports/profile.toml``): a rating that
flips at ×1.2 sessions is a different statement from one that holds within ×100.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from reports.cost import CostReport, Estimate, Profile

FACTORS = tuple(1.1**k for k in range(1, 49))
"""Moves tried, each way: ×1.1 … ×97."""

INPUTS: dict[str, dict[str, str]] = {
    "sessions": {"en": "sessions/month", "es": "sesiones/mes"},
    "peak": {"en": "peak-to-average", "es": "pico/promedio"},
    "size": {"en": "file size", "es": "tamaño de archivo"},
}


@dataclass(frozen=True)
class Sensitivity:
    input: str
    up: float | None
    """Smallest factor > 1 that changes the rating (None: none up to ×97)."""
    down: float | None
    """Smallest factor > 1 by which dividing the input changes the rating."""


def _moved(profile: Profile, name: str, factor: float) -> tuple[Profile, int]:
    if name == "sessions":
        scale = max(1, round(profile.decision_scale * factor))
        return replace(profile, decision_scale=scale), scale
    if name == "peak":
        return replace(profile, peak_to_average=profile.peak_to_average * factor), profile.decision_scale
    mix = tuple((max(1, int(size * factor)), w) for size, w in profile.size_mix)
    return replace(profile, size_mix=mix), profile.decision_scale


def cost_sensitivity(costs: CostReport, backend: str, rate: Callable[[Estimate], str]) -> tuple[Sensitivity, ...]:
    """Per decisive input, how far it must move to change ``rate`` of this backend's estimate."""
    base = costs.at(backend)
    if base is None or not base.available:
        return ()
    rating = rate(base)
    out = []
    for name in INPUTS:
        found: dict[str, float | None] = {}
        for direction, sign in (("up", 1), ("down", -1)):
            found[direction] = None
            for factor in FACTORS:
                profile, scale = _moved(costs.profile, name, factor**sign)
                estimate = costs.reestimate(backend, profile, scale)
                if estimate is not None and estimate.available and rate(estimate) != rating:
                    found[direction] = factor
                    break
        out.append(Sensitivity(name, found["up"], found["down"]))
    return tuple(out)


def sensitivity_text(items: tuple[Sensitivity, ...]) -> Mapping[str, str]:
    """``rating changes at: sessions/month ×2.1 or ÷3.1; file size holds within ÷97–×97``."""
    span = f"÷{FACTORS[-1]:.0f}–×{FACTORS[-1]:.0f}"

    def words(lang: str) -> str:
        parts = []
        for s in items:
            moves = [m for m in (f"×{s.up:.2g}" if s.up else "", f"÷{s.down:.2g}" if s.down else "") if m]
            joined = (" or " if lang == "en" else " o ").join(moves)
            holds = f"holds within {span}" if lang == "en" else f"se mantiene entre {span}"
            parts.append(f"{INPUTS[s.input][lang]} {joined or holds}")
        lead = "sensitivity, the rating changes at" if lang == "en" else "sensibilidad, la calificación cambia con"
        return f"{lead}: " + "; ".join(parts) if parts else ""

    return {"en": words("en"), "es": words("es")}

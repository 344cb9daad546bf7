"""The synthetic ECU images look like firmware and behave deterministically."""

from __future__ import annotations

import hashlib
import tracemalloc
import zlib

import numpy as np
import pytest

from tempbench.ecu import (
    CAL_MAGIC,
    KiB,
    MiB,
    calibration_maps,
    ecu_stream,
    generate_ecu,
    layout,
    modify_ecu,
    sector_bytes,
)


@pytest.mark.parametrize("size", [0, 1, 4095, 256 * KiB, 256 * KiB + 3, 1 * MiB, 8 * MiB])
def test_image_has_exactly_the_requested_size(size: int) -> None:
    assert len(generate_ecu(size, seed=1)) == size


def test_same_seed_gives_the_same_image_and_another_seed_another() -> None:
    assert generate_ecu(512 * KiB, seed=5) == generate_ecu(512 * KiB, seed=5)
    assert generate_ecu(512 * KiB, seed=5) != generate_ecu(512 * KiB, seed=6)


def test_stream_yields_the_same_bytes_as_the_whole_image() -> None:
    size = 2 * MiB + 123
    with ecu_stream(size, seed=9) as stream:
        pieces = []
        while piece := stream.read(100_000):
            pieces.append(piece)
    assert b"".join(pieces) == generate_ecu(size, seed=9)


def test_stream_of_a_huge_image_holds_one_sector_at_a_time() -> None:
    size = 1024 * MiB
    tracemalloc.start()  # numpy reports its buffers to tracemalloc too
    try:
        with ecu_stream(size, seed=2) as stream:
            for _ in range(24):
                assert len(stream.read(1 * MiB)) == 1 * MiB
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * MiB, f"reading 24 MiB of a 1 GiB stream peaked at {peak / MiB:.1f} MiB"


@pytest.mark.parametrize("size", [256 * KiB, 1 * MiB, 8 * MiB])
def test_image_has_erased_code_and_calibration_regions(size: int) -> None:
    data = generate_ecu(size, seed=3)
    sector = sector_bytes(size)
    erased = sum(data[i : i + sector] == b"\xff" * sector for i in range(0, size, sector))
    assert erased >= 2, "no erased (0xFF) sectors"
    assert {role for role, _ in layout(size, 3)} >= {"code", "erased", "calibration", "application"}
    assert len(calibration_maps(data)) >= 10
    assert data.count(CAL_MAGIC) >= 1
    # Firmware compresses, unlike random bytes, and far less than zeros.
    ratio = len(zlib.compress(data, 6)) / size
    assert 0.2 < ratio < 0.95, ratio


def test_calibration_maps_are_smooth_16_bit_surfaces() -> None:
    data = generate_ecu(1 * MiB, seed=4)
    for cal in calibration_maps(data)[:20]:
        axis = np.frombuffer(data, ">u2", cal.columns, cal.offset)
        assert np.all(np.diff(axis.astype(int)) > 0), "axis breakpoints must increase"
        values = np.frombuffer(data, ">u2", cal.columns * cal.rows, cal.values_offset).astype(int)
        grid = values.reshape(cal.rows, cal.columns)
        span = grid.max() - grid.min() or 1
        # Neighbouring cells differ by a fraction of the map's range: a surface, not noise.
        assert np.abs(np.diff(grid, axis=1)).max() <= span * 0.6


def test_modify_changes_only_a_few_maps_and_nothing_else() -> None:
    original = generate_ecu(1 * MiB, seed=11)
    modified = modify_ecu(original, seed=1, maps=3)
    assert len(modified) == len(original) and modified != original
    changed = np.flatnonzero(np.frombuffer(original, np.uint8) != np.frombuffer(modified, np.uint8))
    maps = calibration_maps(original)
    touched = {n for n, cal in enumerate(maps) for at in changed if cal.values_offset <= at < cal.end}
    inside = [at for at in changed if any(maps[n].values_offset <= at < maps[n].end for n in touched)]
    assert len(inside) == len(changed), "bytes outside map values changed"
    assert 1 <= len(touched) <= 3
    assert calibration_maps(modified) == maps  # directories and axes untouched


def test_modify_is_deterministic_per_seed() -> None:
    original = generate_ecu(512 * KiB, seed=12)
    digest = lambda data: hashlib.sha256(data).hexdigest()  # noqa: E731
    assert digest(modify_ecu(original, seed=2)) == digest(modify_ecu(original, seed=2))
    assert modify_ecu(original, seed=2) != modify_ecu(original, seed=3)


def test_modify_refuses_an_image_without_maps() -> None:
    with pytest.raises(ValueError, match="no calibration maps"):
        modify_ecu(b"\xff" * (256 * KiB), seed=1)

"""Synthetic ECU firmware images: seeded, realistic in structure, any size.

The reference app handles engine-control-unit flash dumps (256 KiB to 8 MiB), which are not
random bytes: they hold erased flash (0xFF), machine code, and calibration areas of smooth
16-bit maps (fuel, ignition, boost tables) that tuning tools edit. Compression ratios, diff
sizes and block CRCs of the workloads therefore depend on that structure, so the samples
imitate it:

- the image is cut into sectors (a power of two, ``size/32`` clamped to 4 KiB-256 KiB);
- a seeded layout assigns each sector a role: boot code, an erased gap, the calibration
  area, application code with a few erased holes, and an erased tail;
- code is 16-bit words with a skewed opcode byte and a uniform operand byte;
- a calibration sector starts with a map directory (``b"CALB"``, count, then per map its
  offset, columns and rows) followed by maps: two increasing axes and a smooth surface of
  big-endian 16-bit values; the unused rest of the sector stays erased.

Every sector is generated from ``(seed, sector index)`` alone, so :func:`ecu_stream` yields
exactly the bytes of :func:`generate_ecu` one sector at a time (constant memory at any size),
and :func:`modify_ecu` finds the maps again from the bytes, like a tuning tool would.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from backends.base import ChunkReader

KiB = 1024
MiB = 1024 * KiB
MIN_SECTOR, MAX_SECTOR = 4 * KiB, 256 * KiB
TYPICAL_SIZES = (256 * KiB, 512 * KiB, 1 * MiB, 2 * MiB, 4 * MiB, 8 * MiB)
"""Real dump sizes; any positive size works (streams go far beyond)."""

CAL_MAGIC = b"CALB"
_DIR_HEAD = struct.Struct(">4sH")  # magic, map count
_DIR_ENTRY = struct.Struct(">IBB")  # offset within the sector, columns, rows
_MAX_MAPS_PER_SECTOR = 48
_MAX_VALUE = 50_000  # leaves head-room for modify_ecu's increases within 16 bits

CODE, ERASED, CALIBRATION = "code", "erased", "calibration"

# A skewed opcode alphabet: real code repeats a few instruction encodings far more than others.
_OPCODES = np.random.default_rng(0xC0DE).permutation(256)[:48].astype(np.uint8)
_OPCODE_P = 0.9 ** np.arange(len(_OPCODES))
_OPCODE_P /= _OPCODE_P.sum()
# Inverse CDF at 16-bit resolution: mapping uniform draws through it is far faster than
# rng.choice(p=...), which dominated the time of multi-GiB streams.
_OPCODE_LUT = _OPCODES[np.searchsorted(np.cumsum(_OPCODE_P), (np.arange(65536) + 0.5) / 65536)]


@dataclass(frozen=True)
class CalibrationMap:
    """Where one map lives in an image: its values are ``rows x columns`` big-endian u16."""

    offset: int
    """Absolute offset of the map (its x axis)."""
    columns: int
    rows: int

    @property
    def values_offset(self) -> int:
        return self.offset + 2 * (self.columns + self.rows)

    @property
    def values_bytes(self) -> int:
        return 2 * self.columns * self.rows

    @property
    def end(self) -> int:
        return self.values_offset + self.values_bytes


def generate_ecu(size: int = 1 * MiB, seed: int = 0) -> bytes:
    """A whole image of exactly ``size`` bytes; the same bytes for the same (size, seed)."""
    with ecu_stream(size, seed) as stream:
        return stream.read()


def ecu_stream(size: int, seed: int = 0) -> BinaryIO:
    """The bytes of ``generate_ecu(size, seed)`` as a stream holding one sector at a time."""
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    return ChunkReader(_sectors(size, seed))


def modify_ecu(data: bytes, seed: int = 0, maps: int = 3) -> bytes:
    """A tuned copy of an image: ``maps`` calibration maps scaled up smoothly, nothing else.

    Like a tuning tool raising a fuel or boost table: each chosen map gets a seeded factor
    of 3-12 % over a rectangle of its cells. Raises ValueError when the image has no maps.
    """
    found = calibration_maps(data)
    if not found:
        raise ValueError("no calibration maps found: not an image made by generate_ecu")
    rng = np.random.default_rng([seed, 0x7E5])
    chosen = rng.choice(len(found), size=min(maps, len(found)), replace=False)
    out = bytearray(data)
    for index in sorted(chosen):
        cal = found[int(index)]
        values = np.frombuffer(data, ">u2", cal.columns * cal.rows, cal.values_offset)
        grid = values.reshape(cal.rows, cal.columns).astype(np.float64)
        r0, c0 = int(rng.integers(0, cal.rows)), int(rng.integers(0, cal.columns))
        factor = 1 + rng.uniform(0.03, 0.12)
        grid[r0:, c0:] *= factor
        tuned = np.clip(np.rint(grid), 0, 0xFFFF).astype(">u2")
        out[cal.values_offset : cal.end] = tuned.tobytes()
    return bytes(out)


def calibration_maps(data: bytes) -> list[CalibrationMap]:
    """Every map listed by the calibration directories of an image (sector-aligned)."""
    sector = sector_bytes(len(data))
    found: list[CalibrationMap] = []
    for start in range(0, len(data), sector):
        end = min(start + sector, len(data))
        if data[start : start + 4] != CAL_MAGIC or end - start < _DIR_HEAD.size:
            continue
        _, count = _DIR_HEAD.unpack_from(data, start)
        for n in range(count):
            at = start + _DIR_HEAD.size + n * _DIR_ENTRY.size
            if at + _DIR_ENTRY.size > end:
                break
            offset, columns, rows = _DIR_ENTRY.unpack_from(data, at)
            cal = CalibrationMap(start + offset, columns, rows)
            if cal.end <= end:
                found.append(cal)
    return found


def sector_bytes(size: int) -> int:
    """The sector size of an image of ``size`` bytes: a power of two near ``size/32``."""
    target = max(size // 32, 1)
    return min(max(1 << (target.bit_length() - 1), MIN_SECTOR), MAX_SECTOR)


def layout(size: int, seed: int) -> list[tuple[str, int]]:
    """The image's areas in order as (role, sector count): a small list at any size."""
    sectors = -(-size // sector_bytes(size)) if size else 0
    rng = np.random.default_rng([seed, 0x1A4])
    boot = max(1, round(sectors * rng.uniform(0.04, 0.08)))
    gap = round(sectors * rng.uniform(0.02, 0.06))
    calibration = max(1, round(sectors * rng.uniform(0.08, 0.16)))
    tail = max(1, round(sectors * rng.uniform(0.10, 0.30)))
    application = sectors - boot - gap - calibration - tail
    areas = [(CODE, boot), (ERASED, gap), (CALIBRATION, calibration), ("application", application), (ERASED, tail)]
    # Tiny images cannot hold every area: trim from the end until the counts fit.
    out, left = [], sectors
    for role, count in areas:
        count = min(max(count, 0), left)
        if count:
            out.append((role, count))
        left -= count
    return out


def _sectors(size: int, seed: int) -> Iterator[bytes]:
    """The image's sectors in order, each generated from ``(seed, sector index)`` alone."""
    sector = sector_bytes(size)
    areas = layout(size, seed)
    for index, start in enumerate(range(0, size, sector)):
        length = min(sector, size - start)
        role = _role(areas, seed, index)
        rng = np.random.default_rng([seed, index, 0x5EC])
        if role == ERASED:
            yield b"\xff" * length
        elif role == CALIBRATION:
            yield _calibration_sector(length, rng)
        else:
            code = _code(length, rng)
            if start == 0:
                ident = f"TEMPBENCH-ECU SW{seed % 100000:05d} synthetic\0".encode()
                code = (code[:64] + ident + code[64 + len(ident) :])[:length]
            yield code


def _role(areas: list[tuple[str, int]], seed: int, index: int) -> str:
    for role, count in areas:
        if index < count:
            if role != "application":
                return role
            # Application code has a few erased holes (unused flash blocks).
            hole = np.random.default_rng([seed, index, 0x401E]).random() < 0.08
            return ERASED if hole else CODE
        index -= count
    return ERASED


def _code(length: int, rng: np.random.Generator) -> bytes:
    words = -(-length // 2)
    code = np.empty((words, 2), np.uint8)
    code[:, 0] = _OPCODE_LUT[rng.integers(0, 65536, size=words, dtype=np.uint16)]
    code[:, 1] = rng.integers(0, 256, size=words, dtype=np.uint8)
    data = code.tobytes()[:length]
    if data[:4] == CAL_MAGIC:  # never look like a calibration directory
        data = b"\0" + data[1:]
    return data


def _calibration_sector(length: int, rng: np.random.Generator) -> bytes:
    sector = bytearray(b"\xff" * length)
    maps: list[tuple[int, int, int]] = []
    cursor = _DIR_HEAD.size + _MAX_MAPS_PER_SECTOR * _DIR_ENTRY.size
    while len(maps) < _MAX_MAPS_PER_SECTOR:
        columns = int(rng.integers(4, 17))
        rows = 1 if rng.random() < 0.3 else int(rng.integers(4, 17))  # curves and maps
        encoded = _smooth_map(columns, rows, rng)
        if cursor + len(encoded) > length:
            break
        sector[cursor : cursor + len(encoded)] = encoded
        maps.append((cursor, columns, rows))
        cursor += len(encoded) + 2 * int(rng.integers(0, 8))  # scalars and padding between
    if length < _DIR_HEAD.size:
        return bytes(sector)
    _DIR_HEAD.pack_into(sector, 0, CAL_MAGIC, len(maps))
    for n, entry in enumerate(maps):
        _DIR_ENTRY.pack_into(sector, _DIR_HEAD.size + n * _DIR_ENTRY.size, *entry)
    return bytes(sector)


def _smooth_map(columns: int, rows: int, rng: np.random.Generator) -> bytes:
    """Axes (increasing breakpoints such as rpm and load) and a smooth surface over them."""
    x_axis = np.cumsum(rng.integers(100, 800, size=columns))
    y_axis = np.cumsum(rng.integers(5, 60, size=rows))
    x = np.linspace(0.0, 1.0, columns)[None, :]
    y = np.linspace(0.0, 1.0, rows)[:, None]
    a, b, c, d = rng.uniform(-1.0, 1.0, size=4)
    surface = a * x + b * y + c * x * y + d * np.sin(np.pi * x) * np.sin(np.pi * y)
    span = np.ptp(surface) or 1.0
    low, high = sorted(rng.uniform(500, _MAX_VALUE, size=2))
    values = low + (surface - surface.min()) / span * (high - low)
    parts = (x_axis, y_axis, np.rint(values).ravel())
    return b"".join(np.asarray(part).astype(">u2").tobytes() for part in parts)

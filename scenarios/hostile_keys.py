"""Generated hostile keys: (session_id, kind) pairs that every store must refuse.

The security probe tries each pair against a store and counts the ones that escaped the
store's root or raised anything but ``InvalidKey``. The pairs are built from families of
known tricks (path traversal, URL encoding, NUL and control characters, homoglyphs,
over-long names, empty names, Windows separators, wrong types) combined with seeded
mutations, so every run tries the same set and the count is at least ``count``.

Traversal and absolute-path keys can only be aimed at a directory the caller names
(``sandbox``) and climb at most ``max_depth`` levels: a store that lets ``..`` through
(the probe exists to find one) then writes inside a scratch tree, never into ``/etc``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from backends.base import InvalidKey, validate_key, validate_session_id

VALID_SESSION = "hostileprobe0"
VALID_KIND = "original"

FAMILIES: tuple[str, ...] = (
    "traversal",
    "absolute",
    "url_encoded",
    "nul_control",
    "non_ascii",
    "over_long",
    "empty",
    "windows",
    "shell_glob",
    "wrong_type",
)


@dataclass(frozen=True)
class HostileKey:
    """One (session_id, kind) pair and the trick it carries."""

    session_id: object
    kind: object
    family: str
    target: str
    """Which half carries the trick: ``session_id``, ``kind`` or ``both``."""

    @property
    def session_hostile(self) -> bool:
        """The session id alone is refused by the rules (so ``delete_session`` must refuse it)."""
        try:
            validate_session_id(self.session_id)
        except InvalidKey:
            return True
        return False


def hostile_keys(
    count: int = 512, seed: int = 0, sandbox: str | None = None, max_depth: int = 3
) -> list[HostileKey]:
    """Return at least ``count`` distinct hostile pairs, the same ones for the same arguments.

    ``sandbox`` is the absolute directory that absolute-path tricks point into (without
    it they point into a path that does not exist). ``max_depth`` bounds the number of
    ``..`` components across both halves of a pair, so a store root nested deeper than
    ``max_depth`` levels below the sandbox keeps every escape inside the sandbox.
    """
    rng = random.Random(seed)
    atoms = list(_atoms(sandbox or "/nonexistent-tempbench-sandbox", max_depth))
    seen: set[tuple[str, str]] = set()
    keys: list[HostileKey] = []

    def add(session_id: object, kind: object, family: str, target: str) -> None:
        ident = (repr(session_id), repr(kind))
        if ident not in seen and _refused_by_the_rules(session_id, kind):
            seen.add(ident)
            keys.append(HostileKey(session_id, kind, family, target))

    for family, atom in atoms:
        add(atom, VALID_KIND, family, "session_id")
        add(VALID_SESSION, atom, family, "kind")
    # Mutations: a valid token wrapped around a trick, and tricks in both halves at once.
    # Depth stays bounded because only one ``..`` atom is used per half and atoms obey it.
    while len(keys) < count:
        family, atom = rng.choice(atoms)
        if not isinstance(atom, str):
            add(atom, rng.choice([VALID_KIND, 7, None]), family, "session_id")
            continue
        shape = rng.randrange(5)
        if shape == 0:
            add(f"{VALID_SESSION}{atom}", VALID_KIND, family, "session_id")
        elif shape == 1:
            add(f"{atom}{rng.randrange(10**6)}", VALID_KIND, family, "session_id")
        elif shape == 2:
            add(VALID_SESSION, f"k{atom}", family, "kind")
        elif shape == 3:
            add(VALID_SESSION, f"{atom}x{rng.randrange(10**6)}", family, "kind")
        else:
            other_family, other = rng.choice(atoms)
            if not isinstance(other, str) or (_climbs(atom) and _climbs(other)):
                continue  # two climbing halves together could exceed max_depth
            add(atom, other, family if family == other_family else "mixed", "both")
    return keys


def families(keys: list[HostileKey]) -> dict[str, int]:
    """How many keys of each family a list holds (for the probe's evidence)."""
    out: dict[str, int] = {}
    for key in keys:
        out[key.family] = out.get(key.family, 0) + 1
    return out


def _climbs(text: str) -> bool:
    return "/" in text or ".." in text


def _refused_by_the_rules(session_id: object, kind: object) -> bool:
    """Keep only pairs the documented key rules refuse (a mutation can yield a plain token)."""
    try:
        validate_key(session_id, kind)
    except InvalidKey:
        return True
    return False


def _atoms(sandbox: str, max_depth: int) -> Iterator[tuple[str, object]]:
    sandbox = sandbox.rstrip("/")
    for depth in range(1, max_depth + 1):
        up = "../" * depth
        yield "traversal", f"{up}escaped"
        yield "traversal", f"{up}escaped/x"
        yield "traversal", up.rstrip("/")
        yield "traversal", f"x/{up}escaped"
        yield "traversal", f"./{up}escaped"
        yield "traversal", f"{'../' * depth}.escaped"
    yield from (("traversal", t) for t in ("..", ".", "./x", "x/y", "x/./y", "...", "x/", "x//y"))
    for name in ("escaped-abs", "escaped-abs/deeper", "escaped-abs/../escaped-abs2"):
        yield "absolute", f"{sandbox}/{name}"
        yield "absolute", f"//{sandbox.lstrip('/')}/{name}"
    yield "absolute", "~/escaped"
    yield "absolute", "~root"
    yield "absolute", "$HOME"
    for enc in (
        "%2e%2e%2fescaped", "%2E%2E%2Fescaped", "..%2fescaped", "%2e%2e/escaped",
        "%252e%252e%252fescaped", "..%c0%afescaped", "..%5cescaped", "%00", "a%00b",
        "%2f", "%5c", "abc%20def", "..%252f", "%u002e%u002e", "%c0%ae%c0%ae%c0%af",
    ):
        yield "url_encoded", enc
    for code in [*range(0, 32), 127]:
        yield "nul_control", f"a{chr(code)}b"
    yield from (("nul_control", t) for t in ("\x00", "abc\x00.txt", "\x00../escaped", "a\r\nb"))
    for text in (
        "ѕеѕѕіоn",  # Cyrillic homoglyphs of "session"
        "оriginal",  # Cyrillic o
        "sess\u200bion",  # zero-width space
        "sess\u00adion",  # soft hyphen
        "\u202eexe.txt",  # right-to-left override
        "caf\u00e9", "cafe\u0301", "Ⅸ", "ﬁle", "ｓｅｓｓｉｏｎ", "session\ufeff",
        "\u2215escaped", "\u2044escaped", "\uff0fescaped", "\u2024\u2024\u2215escaped",
        "\uff0e\uff0e\uff0fescaped", "日本語", "😀", "\udc80", "a\u0000\u00e9",
    ):
        yield "non_ascii", text
    for length in (129, 256, 1000, 4097, 70000):
        yield "over_long", "a" * length
    yield "over_long", "a/" * 70 + "b"  # deep but inside the root: over-long only
    yield "over_long", "a" * 33  # over the kind limit, within the session limit
    yield "empty", ""
    yield from (("empty", t) for t in (" ", "  ", "\t", "\n"))
    for text in (
        "..\\escaped", "..\\..\\escaped", "C:\\escaped", "C:escaped", "\\\\server\\share",
        "a\\b", "nul.txt", "a:b", "a|b", "file.txt:stream", "x.", "CON.",
    ):
        yield "windows", text
    for text in ("*", "?", "[a-z]", "a*", "-rf", "--help", "$(id)", "`id`", "a;b", "a b",
                 "'", '"', "<x>", "a&b", "{a,b}", "#", "a=b", "@", "!", ":", "temp_file:*"):
        yield "shell_glob", text
    for value in (None, 0, 1.5, b"session", b"../escaped", ["a"], {"a": 1}, ("a",), True):
        yield "wrong_type", value

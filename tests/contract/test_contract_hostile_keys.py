"""Hostile session ids and kinds raise InvalidKey and never touch anything outside the root."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from backends import InvalidKey, Store
from backends.base import validate_key
from tests.contract.helpers import medium, store_root

EXAMPLES = 250
MIN_EXAMPLES = 200
SAFE_SESSION, SAFE_KIND = "hostile0", "original"

_plain = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", max_size=12)
_tricks = st.sampled_from([
    "..", "../", "../../", "/", "\\", "..\\", "./", "~", "%2e%2e%2f", "%2e%2e/", "..%2f", "%00",
    "%252e", "\x00", "\n", "\r", "\t", "\x7f", " ", "*", "?", ":", "|", "$", "`", ";", ".",
    "é", "\u202e", "\u200b", "\uff0f", "\u2215", "ｓ", "😀", "\udc80",
])
_with_trick = st.builds(lambda a, trick, b: a + trick + b, _plain, _tricks, _plain)
_hostile_text = st.one_of(
    _with_trick,
    st.builds(lambda a, trick: "/tmp/" + a + trick, _plain, _tricks),  # absolute paths
    st.text(min_size=1, max_size=40),  # anything at all, kept when the rules refuse it
    st.text(alphabet="abc0123456789", min_size=129, max_size=400),  # over-long
    st.text(alphabet=st.characters(min_codepoint=128), min_size=1, max_size=8),
    st.just(""),
)
_hostile_kind = st.one_of(
    _hostile_text,
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=8),  # upper case
    st.text(alphabet="abc", min_size=33, max_size=64),  # over the kind limit
    st.builds(lambda d, a: d + a, st.sampled_from("0123456789_-"), _plain),  # bad first char
)
_wrong_type = st.sampled_from([None, 7, 1.5, b"session", b"../escaped", ["a"], True])
_pairs = st.one_of(
    st.tuples(_hostile_text, st.just(SAFE_KIND)),
    st.tuples(st.just(SAFE_SESSION), _hostile_kind),
    st.tuples(_hostile_text, _hostile_kind),
    st.tuples(_wrong_type, st.just(SAFE_KIND)),
    st.tuples(st.just(SAFE_SESSION), _wrong_type),
)


def _refused_by_the_rules(session_id: object, kind: object) -> bool:
    try:
        validate_key(session_id, kind)
    except InvalidKey:
        return True
    return False


def _tree(base: Path, skip: Path | None) -> set[str]:
    seen: set[str] = set()
    for directory, dirs, files in os.walk(base):
        if skip is not None:
            dirs[:] = [d for d in dirs if Path(directory, d) != skip]
        seen.update(os.path.join(directory, name) for name in (*dirs, *files))
    return seen


def _only_invalid_key(call, *args) -> None:
    try:
        call(*args)
    except InvalidKey:
        return
    except Exception as exc:
        raise AssertionError(f"{call.__name__}{args!r:.120} raised {type(exc).__name__}: {exc}") from exc
    raise AssertionError(f"{call.__name__}{args!r:.120} was accepted")


def test_hostile_keys_raise_only_invalid_key_and_touch_nothing(store: Store, tmp_path: Path) -> None:
    root = store_root(store)
    # tmp_path's parent holds this pytest run's scratch trees, where a '../' escape would land.
    outside = tmp_path.parent
    before_outside, before_cwd = _tree(outside, root), set(os.listdir())
    before_medium = medium(store)
    tried: list[tuple[object, object]] = []

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
    @given(_pairs)
    def check(pair: tuple[object, object]) -> None:
        session_id, kind = pair
        assume(_refused_by_the_rules(session_id, kind))
        _only_invalid_key(store.put, session_id, kind, b"hostile payload", 60)
        _only_invalid_key(store.get, session_id, kind)
        _only_invalid_key(store.open, session_id, kind)
        _only_invalid_key(store.delete, session_id, kind)
        if _refused_by_the_rules(session_id, SAFE_KIND):  # the session id itself is hostile
            _only_invalid_key(store.delete_session, session_id)
        tried.append(pair)

    check()
    assert len(tried) >= MIN_EXAMPLES, f"only {len(tried)} hostile keys were generated"
    assert medium(store) == before_medium, "a hostile key stored something"
    assert _tree(outside, root) == before_outside, "something appeared outside the store root"
    # hypothesis creates its own .hypothesis folder in the working directory on first use
    appeared = set(os.listdir()) - before_cwd - {".hypothesis"}
    assert not appeared, f"something appeared in the working directory: {sorted(appeared)}"

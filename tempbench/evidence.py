"""Evidence sentences as data: a message id plus its arguments, rendered in any language.

A scenario writes ``Say("leak_residue", objects=3, ...)`` where it used to write an English
f-string. A :class:`Say` *is* that English sentence (a ``str``: every reader of
``results.csv`` and every ``"..." in finding.evidence`` keeps working), and
:func:`evidence_params` turns it into the row's params: ``evidence`` (the English text, as
before), ``evidence_id`` and ``evidence_args``. The report then renders the id in its own
language with :func:`localise`. The sentences live in ``evidence.toml`` beside this module,
one table per language; like :mod:`tempbench.schema` this is part of the data contract
between scenarios and reports, and imports neither.

An argument may itself be a :class:`Say` (a clause chosen at run time) or a list (of clauses,
joined with "; ", or of names, joined with ", "). Names, paths, keys and error messages go in
as they are: they are quoted, not translated.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

CATALOGUE_PATH = Path(__file__).with_name("evidence.toml")
DEFAULT_LANG = "en"


class Say(str):
    """An evidence sentence: its English text, plus the id and arguments that render it anew."""

    id: str
    args: dict[str, Any]

    def __new__(cls, msg_id: str, /, **args: Any) -> Say:
        if msg_id not in catalogue()[DEFAULT_LANG]:
            raise KeyError(f"no evidence message {msg_id!r} in {CATALOGUE_PATH}")
        self = super().__new__(cls, render(msg_id, _encode(args), DEFAULT_LANG))
        self.id, self.args = msg_id, args
        return self

    def __reduce__(self) -> tuple[Any, ...]:  # pickled (to a spawned process) by id and arguments
        return _say, (self.id, self.args)

    def params(self) -> dict[str, Any]:
        return {"evidence": str(self), "evidence_id": self.id, "evidence_args": _encode(self.args)}


def evidence_params(text: str) -> dict[str, Any]:
    """A row's evidence params: id and arguments too when ``text`` is a :class:`Say`."""
    return text.params() if isinstance(text, Say) else {"evidence": str(text)}


EVIDENCE_KEYS = ("evidence", "evidence_id", "evidence_args")
"""The params keys :func:`evidence_params` writes (left out where params are shown as data)."""


def localise(params: Mapping[str, Any], lang: str) -> str:
    """A row's evidence in ``lang``; the English text as saved when the id is not known
    (a row written before ids existed, or by a newer tempbench)."""
    msg_id = params.get("evidence_id")
    if isinstance(msg_id, str) and msg_id in catalogue()[DEFAULT_LANG]:
        try:
            return render(msg_id, params.get("evidence_args") or {}, lang)
        except (KeyError, IndexError, ValueError, TypeError):  # hand-edited arguments
            pass
    return str(params.get("evidence", ""))


def render(msg_id: str, args: Mapping[str, Any], lang: str) -> str:
    """The message ``msg_id`` in ``lang`` (English when that language lacks it)."""
    table = catalogue().get(lang, {})
    template = table.get(msg_id) or catalogue()[DEFAULT_LANG][msg_id]
    return template.format(**{k: _text(v, lang) for k, v in args.items()})


@cache
def catalogue() -> dict[str, dict[str, str]]:
    """Language -> message id -> template."""
    return tomllib.loads(CATALOGUE_PATH.read_text(encoding="utf-8"))


def _say(msg_id: str, args: dict[str, Any]) -> Say:
    return Say(msg_id, **args)


def _encode(value: Any) -> Any:
    """JSON-ready arguments: a nested :class:`Say` becomes ``{"say": id, "args": {...}}``."""
    if isinstance(value, Say):
        return {"say": value.id, "args": _encode(value.args)}
    if isinstance(value, Mapping):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    return value


def _text(value: Any, lang: str) -> Any:
    if isinstance(value, Mapping) and "say" in value:
        return render(value["say"], value.get("args") or {}, lang)
    if isinstance(value, list):
        clauses = any(isinstance(v, Mapping) and "say" in v for v in value)
        return ("; " if clauses else ", ").join(str(_text(v, lang)) for v in value)
    return value

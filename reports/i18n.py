"""The report's message catalogue (``messages.toml``): ``Messages(lang)("key", name=value)``."""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path

MESSAGES_PATH = Path(__file__).parent / "messages.toml"
DEFAULT_LANG = "en"


class UnknownLanguage(ValueError):
    """The catalogue has no table for the requested language."""


@cache
def _catalogue() -> dict[str, dict[str, str]]:
    return tomllib.loads(MESSAGES_PATH.read_text(encoding="utf-8"))


def languages() -> tuple[str, ...]:
    return tuple(_catalogue())


class Messages:
    """Looks messages up in one language, falling back to English for a missing key."""

    def __init__(self, lang: str = DEFAULT_LANG) -> None:
        catalogue = _catalogue()
        if lang not in catalogue:
            raise UnknownLanguage(f"no messages for language {lang!r}; available: {', '.join(catalogue)}")
        self.lang = lang
        self._table = catalogue[lang]
        self._fallback = catalogue[DEFAULT_LANG]

    def __call__(self, key: str, **values: object) -> str:
        text = self._table.get(key) or self._fallback.get(key) or key
        return text.format(**values) if values else text

    def pick(self, texts: dict[str, str] | object) -> str:
        """The text for this language from a ``{lang: text}`` mapping (English fallback)."""
        if isinstance(texts, dict):
            return texts.get(self.lang) or texts.get(DEFAULT_LANG) or next(iter(texts.values()), "")
        return str(texts)

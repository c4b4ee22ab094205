"""A conversation's title until its owner renames it: the first words of its first message,
then (with a remote model and LLM_TITLES) what the model calls it."""

from __future__ import annotations

MAX_TITLE_WORDS = 6
MAX_TITLE_CHARS = 60


def first_words(text: str) -> str:
    """The first few words of `text` on one line, cut at a word and marked when cut."""
    words = text.split()
    title = ""
    for count, word in enumerate(words, 1):
        longer = f"{title} {word}" if title else word
        if count > MAX_TITLE_WORDS or len(longer) > MAX_TITLE_CHARS:
            return (title or word[:MAX_TITLE_CHARS]) + "…"
        title = longer
    return title


def clean_title(text: str) -> str | None:
    """A model's answer as a title: its first line, without quotes or markup; None if empty."""
    line = next((line for line in text.splitlines() if line.strip()), "")
    title = " ".join(line.split()).strip("\"'`*#_ .")
    if not title:
        return None
    return title if len(title) <= MAX_TITLE_CHARS else first_words(title)

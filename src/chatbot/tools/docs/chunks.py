"""Docs as chunks: each file cut where its own structure says, ready to index.

Markdown and HTML split at their headings, and each chunk carries its heading path
("Wallet \u203a Simulation"), which the index weighs above the body; plain text splits into
groups of paragraphs. No chunk holds more than CHUNK_CHARS.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})
TEXT_SUFFIXES = frozenset({".txt", ".rst"})
HTML_SUFFIXES = frozenset({".html", ".htm"})
SUFFIXES = MARKDOWN_SUFFIXES | TEXT_SUFFIXES | HTML_SUFFIXES

CHUNK_CHARS = 1200
"""The most text one chunk holds; a longer section is split at paragraphs (then words)."""
HEADING_SEPARATOR = " \u203a "


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of one file: its heading path and its text."""

    heading: str
    body: str


def chunk_file(source: str, text: str) -> list[Chunk]:
    """The chunks of one file, by its kind."""
    suffix = Path(source).suffix.lower()
    title = _title_from_name(source)
    if suffix in MARKDOWN_SUFFIXES:
        sections = _markdown_sections(text)
    elif suffix in HTML_SUFFIXES:
        parser = _HtmlSections()
        parser.feed(text)
        parser.close()
        sections = parser.sections()
        title = parser.title or title
    else:
        sections = [([], text)]
    first_top = next((path[0] for path, _ in sections if path), None)
    if suffix in MARKDOWN_SUFFIXES and first_top is not None:
        title = first_top
    chunks: list[Chunk] = []
    for path, body in sections:
        heading = HEADING_SEPARATOR.join(name for name in path if name) or title
        chunks.extend(Chunk(heading, piece) for piece in _split(body))
    return chunks


def _title_from_name(source: str) -> str:
    """A file's title from its name: `getting-started.md` is "Getting started"."""
    stem = Path(source).stem.replace("_", " ").replace("-", " ").strip()
    return stem[:1].upper() + stem[1:] if stem else source


_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


def _markdown_sections(text: str) -> list[tuple[list[str], str]]:
    """Markdown as (heading path, body) sections, split at ATX and setext headings."""
    text = _COMMENT.sub("", text)
    lines = text.splitlines()
    if lines and lines[0].strip() == "---":  # YAML front matter
        end = next((i for i in range(1, len(lines)) if lines[i].strip() in ("---", "...")), None)
        if end is not None:
            lines = lines[end + 1 :]
    sections: list[tuple[list[str], str]] = []
    stack: list[tuple[int, str]] = []
    body: list[str] = []
    fence: str | None = None

    def start(level: int, title: str) -> None:
        sections.append(([name for _, name in stack], "\n".join(body)))
        body.clear()
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, _plain_heading(title)))

    for line in lines:
        if fence is not None:
            body.append(line)
            if line.strip().startswith(fence):
                fence = None
            continue
        if opened := _FENCE.match(line):
            fence = opened.group(1)[0] * 3
            body.append(line)
            continue
        if atx := _ATX.match(line):
            start(len(atx.group(1)), atx.group(2) or "")
            continue
        setext = _SETEXT.match(line)
        if setext and body and body[-1].strip() and (len(body) == 1 or not body[-2].strip()):
            title = body.pop()
            start(1 if setext.group(1)[0] == "=" else 2, title)
            continue
        body.append(line)
    sections.append(([name for _, name in stack], "\n".join(body)))
    return [(path, content) for path, content in sections if path or content.strip()]


def _plain_heading(title: str) -> str:
    """A heading without its inline markup: links become their text, `*_` and backticks go."""
    title = _LINK.sub(r"\1", title)
    return " ".join(re.sub(r"[*_`]+", "", title).split())


_BLOCK_TAGS = (
    "address article aside blockquote br dd details div dl dt fieldset figcaption figure"
    " footer form header hr li main ol p pre section summary table tbody td tfoot th thead tr ul"
)
"""Tags that break text into lines: text on both sides never runs together."""


class _HtmlSections(HTMLParser):
    """HTML as text sections split at h1-h6; scripts, styles and the like are dropped."""

    SKIP = frozenset({"script", "style", "noscript", "template", "svg", "head", "nav"})
    BLOCKS = frozenset(_BLOCK_TAGS.split())

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title: str | None = None
        self._sections: list[tuple[list[str], str]] = []
        self._stack: list[tuple[int, str]] = []
        self._text: list[str] = []
        self._skipping: list[str] = []
        self._heading: tuple[int, list[str]] | None = None
        self._in_title = False
        self._title: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag == "body":
            self._skipping.clear()  # a <head> closed only implicitly
        elif tag in self.SKIP:
            self._skipping.append(tag)
        elif self._skipping:
            return
        elif len(tag) == 2 and tag[0] == "h" and tag[1] in "123456":
            self._heading = (int(tag[1]), [])
        elif tag in self.BLOCKS:
            self._text.append("\n\n" if tag in ("p", "div", "section", "article") else "\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
            self.title = " ".join("".join(self._title).split()) or None
        elif tag in self.SKIP:
            if tag in self._skipping:
                while self._skipping and self._skipping.pop() != tag:
                    pass
        elif self._skipping:
            return
        elif self._heading is not None and tag == f"h{self._heading[0]}":
            level, parts = self._heading
            self._heading = None
            self._sections.append(([name for _, name in self._stack], "".join(self._text)))
            self._text.clear()
            while self._stack and self._stack[-1][0] >= level:
                self._stack.pop()
            self._stack.append((level, " ".join("".join(parts).split())))
        elif tag in self.BLOCKS:
            self._text.append("\n\n" if tag in ("p", "div", "section", "article") else "\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self._title.append(data)
        elif self._skipping:
            return
        elif self._heading is not None:
            self._heading[1].append(data)
        else:
            self._text.append(data)

    def sections(self) -> list[tuple[list[str], str]]:
        """The (heading path, text) sections read so far, the last one included."""
        every = [*self._sections, ([name for _, name in self._stack], "".join(self._text))]
        return [(path, _tidy(text)) for path, text in every if path or text.strip()]


def _tidy(text: str) -> str:
    """Text from HTML: spaces collapsed within lines, at most one blank line in a row."""
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _split(body: str) -> Iterator[str]:
    """A section's text in pieces of at most CHUNK_CHARS, cut between paragraphs."""
    paragraphs = [part.strip() for part in re.split(r"\n[ \t]*\n", body) if part.strip()]
    piece: list[str] = []
    size = 0
    for paragraph in paragraphs:
        for part in _cut_words(paragraph):
            if piece and size + 2 + len(part) > CHUNK_CHARS:
                yield "\n\n".join(piece)
                piece, size = [], 0
            piece.append(part)
            size += len(part) + (2 if size else 0)
    if piece:
        yield "\n\n".join(piece)


def _cut_words(paragraph: str) -> Iterator[str]:
    """A paragraph longer than CHUNK_CHARS in word-bounded parts (a long word alone is cut)."""
    while len(paragraph) > CHUNK_CHARS:
        cut = paragraph.rfind(" ", 0, CHUNK_CHARS + 1)
        if cut <= 0:
            cut = CHUNK_CHARS
        yield paragraph[:cut].rstrip()
        paragraph = paragraph[cut:].lstrip()
    if paragraph:
        yield paragraph

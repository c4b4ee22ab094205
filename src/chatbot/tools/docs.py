"""Docs search for the agent: a folder of docs in a SQLite FTS5 index, ranked by BM25.

One index per process, opened at start: building it reads and chunks every file, which
is work for start-up, not for a turn. The index is a file (DOCS_INDEX) with a manifest of
the files it was built from; a process that finds the manifest matching the folder reuses
it without reading a single doc, so it is rebuilt only when files change. A rebuild
writes a temporary file beside it and `os.replace`s it into place, so the workers of a
cluster starting at once never open a half-built index (each may build one; the last
rename wins, and they are all the same).

Chunks follow the documents' own structure: markdown and HTML split at their headings
(the heading path is indexed and weighted above the body); plain text splits into groups
of paragraphs. User queries are free text, never FTS5 syntax: each word is quoted and
the words are OR-ed, so nothing a user types can make the search fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from pydantic_ai.toolsets import FunctionToolset

from chatbot.agent.deps import TurnDeps

log = logging.getLogger("chatbot.docs")

SCHEMA_VERSION = 1
"""Bumped whenever the index's tables or chunking change: an older index is rebuilt."""

MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})
TEXT_SUFFIXES = frozenset({".txt", ".rst"})
HTML_SUFFIXES = frozenset({".html", ".htm"})
SUFFIXES = MARKDOWN_SUFFIXES | TEXT_SUFFIXES | HTML_SUFFIXES

CHUNK_CHARS = 1200
"""The most text one chunk holds; a longer section is split at paragraphs (then words)."""
TEXT_CHARS = 1200
"""The most text one hit returns."""
MAX_LIMIT = 20
MAX_QUERY_TERMS = 32
STALE_BUILD_SECONDS = 3600.0
"""A temporary build file older than this was left by a process that died mid-build."""

HEADING_SEPARATOR = " \u203a "
HEADING_WEIGHT, BODY_WEIGHT, SOURCE_WEIGHT = 5.0, 1.0, 2.0
"""bm25() column weights: a word in a chunk's heading counts five times one in its body."""

_TOKENIZER = "porter unicode61 remove_diacritics 2"
_BM25 = f"bm25(chunks, {HEADING_WEIGHT}, {BODY_WEIGHT}, {SOURCE_WEIGHT})"

# Words that match nearly every chunk: dropped from a query unless nothing else is left.
_STOPWORD_TEXT = (
    "a an and are as at be by can do does for from how i in is it me my of on or so that the"
    " this to what when where which who why will with you your"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_WORD = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class DocHit:
    """One chunk of the docs that matched a query; a higher score is a better match."""

    source: str
    heading: str
    text: str
    score: float

    def public(self) -> dict[str, object]:
        """As the agent's tool returns it (JSON-ready)."""
        return {
            "source": self.source,
            "heading": self.heading,
            "text": self.text,
            "score": round(self.score, 4),
        }


@dataclass(frozen=True, slots=True)
class _Chunk:
    heading: str
    body: str


@dataclass(frozen=True, slots=True)
class _FileEntry:
    path: str
    size: int
    mtime_ns: int

    def key(self) -> list[object]:
        return [self.path, self.size, self.mtime_ns]


class DocsIndex:
    """A searchable index of one docs folder, persisted in a SQLite file."""

    def __init__(
        self,
        connection: sqlite3.Connection,
        *,
        docs_dir: Path,
        index_path: Path,
        rebuilt: bool,
        files: int,
        chunks: int,
    ) -> None:
        self._connection: sqlite3.Connection | None = connection
        self._lock = threading.Lock()
        self.docs_dir = docs_dir
        self.index_path = index_path
        self.rebuilt = rebuilt
        """True when this open (re)built the index, False when it reused the one on disk."""
        self.files = files
        self.chunks = chunks

    @classmethod
    async def open(cls, docs_dir: Path, index_path: Path) -> DocsIndex:
        """Open the index of `docs_dir` at `index_path`, (re)building it off the event loop."""
        return await asyncio.to_thread(cls.open_blocking, docs_dir, index_path)

    @classmethod
    def open_blocking(cls, docs_dir: Path, index_path: Path) -> DocsIndex:
        """`open` for callers outside an event loop (it reads files and writes the index)."""
        docs_dir = docs_dir.expanduser().resolve()
        index_path = index_path.expanduser().resolve()
        entries = _scan(docs_dir)
        rebuilt = not _is_current(index_path, docs_dir, entries)
        if rebuilt:
            _build(docs_dir, index_path, entries)
        connection = _connect_read_only(index_path)
        try:
            files, chunks = _counts(connection)
        except BaseException:
            connection.close()
            raise
        if not rebuilt:
            log.info(
                "docs index reused",
                extra={
                    "docs_dir": str(docs_dir),
                    "index": str(index_path),
                    "files": files,
                    "chunks": chunks,
                },
            )
        if not docs_dir.is_dir():
            log.warning(
                "docs folder not found: the agent's docs search will find nothing",
                extra={"docs_dir": str(docs_dir)},
            )
        elif chunks == 0:
            log.warning(
                "docs folder has no docs: the agent's docs search will find nothing",
                extra={"docs_dir": str(docs_dir)},
            )
        return cls(
            connection,
            docs_dir=docs_dir,
            index_path=index_path,
            rebuilt=rebuilt,
            files=files,
            chunks=chunks,
        )

    def search(self, query: str, limit: int = 5) -> list[DocHit]:
        """The chunks that best match free-text `query`, best first ([] when none do)."""
        match = fts_query(query)
        limit = min(limit, MAX_LIMIT)
        if match is None or limit < 1:
            return []
        with self._lock:
            if self._connection is None:
                raise RuntimeError("the docs index is closed")
            try:
                rows = self._connection.execute(
                    f"SELECT source, heading, body, {_BM25} FROM chunks"
                    f" WHERE chunks MATCH ? ORDER BY {_BM25} LIMIT ?",
                    (match, limit),
                ).fetchall()
            except sqlite3.OperationalError as error:
                # fts_query only makes quoted words; this is a safety net, not a path.
                log.warning("docs search failed", extra={"error": str(error)})
                return []
        return [
            DocHit(source=source, heading=heading, text=_trim(body), score=-rank)
            for source, heading, body, rank in rows
        ]

    def close(self) -> None:
        """Close the index's connection (searching afterwards raises)."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


def docs_toolset(index: DocsIndex) -> FunctionToolset[TurnDeps]:
    """The agent's docs search: one tool, `search_docs`, over `index`."""

    async def search_docs(query: str, limit: int = 5) -> dict[str, Any]:
        """Search the assistant's user guide and the operator's docs.

        They explain how this assistant works: the networks it can use and how to switch,
        how transactions are proposed, simulated and approved in the user's own wallet,
        the chain tools, and safety advice. Use it when the user asks how the assistant
        or the app works, rather than guessing. Returns the best matching passages.

        Args:
            query: What to look for, in plain words (e.g. "transaction simulation revert").
            limit: How many passages to return, 1 to 10.
        """
        hits = await asyncio.to_thread(index.search, query, max(1, min(limit, 10)))
        results = [hit.public() for hit in hits]
        if not results:
            return {
                "results": [],
                "note": "Nothing in the docs matched. Try other words, or answer without "
                "the docs and say so.",
            }
        return {"results": results}

    toolset: FunctionToolset[TurnDeps] = FunctionToolset()
    toolset.add_function(search_docs, takes_ctx=False)
    return toolset


def fts_query(text: str) -> str | None:
    """Free text as a safe FTS5 query: its words quoted and OR-ed (None when it has none)."""
    words: list[str] = []
    for word in _WORD.findall(text.lower()):
        if any(char.isalnum() for char in word) and word not in words:
            words.append(word)
    meaningful = [word for word in words if word not in _STOPWORDS] or words
    if not meaningful:
        return None
    return " OR ".join('"' + word.replace('"', '""') + '"' for word in meaningful[:MAX_QUERY_TERMS])


# The folder and the manifest.


def _scan(docs_dir: Path) -> list[_FileEntry]:
    """The docs under `docs_dir` (hidden files and folders skipped), sorted by path."""
    if not docs_dir.is_dir():
        return []
    entries: list[_FileEntry] = []
    for root, folders, names in os.walk(docs_dir):
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        for name in sorted(names):
            if name.startswith(".") or Path(name).suffix.lower() not in SUFFIXES:
                continue
            path = Path(root, name)
            try:
                stat = path.stat()
            except OSError:
                continue  # a dangling link, or deleted while we looked
            relative = path.relative_to(docs_dir).as_posix()
            entries.append(_FileEntry(relative, stat.st_size, stat.st_mtime_ns))
    return entries


def _manifest_key(entries: list[_FileEntry]) -> list[list[object]]:
    return [entry.key() for entry in entries]


def _is_current(index_path: Path, docs_dir: Path, entries: list[_FileEntry]) -> bool:
    """True when the index on disk was built, by this version, from these very files."""
    if not index_path.is_file():
        return False
    try:
        connection = _connect_read_only(index_path)
    except sqlite3.Error:
        return False
    try:
        meta = dict(connection.execute("SELECT key, value FROM meta").fetchall())
        manifest = json.loads(meta["manifest"])
        return (
            meta.get("schema_version") == str(SCHEMA_VERSION)
            and meta.get("docs_dir") == str(docs_dir)
            and [item[:3] for item in manifest] == _manifest_key(entries)
        )
    except (sqlite3.Error, KeyError, ValueError, TypeError):
        return False  # not an index of ours, or a damaged one: build a fresh one
    finally:
        connection.close()


# Building.


def _build(docs_dir: Path, index_path: Path, entries: list[_FileEntry]) -> None:
    """Index every file into a temporary file, then move it over `index_path` atomically."""
    started = time.perf_counter()
    index_path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_builds(index_path)
    descriptor, temporary = tempfile.mkstemp(
        prefix=f".{index_path.name}.", suffix=".tmp", dir=index_path.parent
    )
    os.close(descriptor)
    try:
        manifest, chunks = _write_index(Path(temporary), docs_dir, entries)
        with open(temporary, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(temporary, index_path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    log.info(
        "docs index built",
        extra={
            "docs_dir": str(docs_dir),
            "index": str(index_path),
            "files": len(manifest),
            "chunks": chunks,
            "seconds": round(time.perf_counter() - started, 3),
        },
    )


def _remove_stale_builds(index_path: Path) -> None:
    """Delete temporary files left by builds that died (a fresh one may be another's)."""
    for leftover in index_path.parent.glob(f".{index_path.name}.*.tmp"):
        with contextlib.suppress(OSError):
            if time.time() - leftover.stat().st_mtime > STALE_BUILD_SECONDS:
                leftover.unlink()


def _write_index(
    path: Path, docs_dir: Path, entries: list[_FileEntry]
) -> tuple[list[list[object]], int]:
    """Write the tables into the (empty) file at `path`; the manifest and chunk count."""
    manifest: list[list[object]] = []
    count = 0
    connection = sqlite3.connect(path)
    try:
        with connection:
            connection.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            connection.execute(
                "CREATE VIRTUAL TABLE chunks USING fts5("
                f"heading, body, source, position UNINDEXED, tokenize = '{_TOKENIZER}')"
            )
            for entry in entries:
                try:
                    data = (docs_dir / entry.path).read_bytes()
                except OSError as error:
                    log.warning(
                        "docs file unreadable: skipped",
                        extra={"path": entry.path, "error": str(error)},
                    )
                    continue
                # The manifest keeps the size and time seen by the scan: a file changed
                # since no longer matches, and the next open rebuilds.
                manifest.append([*entry.key(), hashlib.sha256(data).hexdigest()])
                text = data.decode("utf-8-sig", errors="replace")
                for position, chunk in enumerate(_chunk_file(entry.path, text)):
                    connection.execute(
                        "INSERT INTO chunks (heading, body, source, position) VALUES (?, ?, ?, ?)",
                        (chunk.heading, chunk.body, entry.path, position),
                    )
                    count += 1
            connection.execute("INSERT INTO chunks (chunks) VALUES ('optimize')")
            connection.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [
                    ("schema_version", str(SCHEMA_VERSION)),
                    ("docs_dir", str(docs_dir)),
                    ("manifest", json.dumps(manifest)),
                    ("built_at", str(time.time())),
                ],
            )
    finally:
        connection.close()
    return manifest, count


def _connect_read_only(index_path: Path) -> sqlite3.Connection:
    uri = index_path.as_uri() + "?mode=ro"
    return sqlite3.connect(uri, uri=True, check_same_thread=False)


def _counts(connection: sqlite3.Connection) -> tuple[int, int]:
    (manifest,) = connection.execute("SELECT value FROM meta WHERE key = 'manifest'").fetchone()
    (chunks,) = connection.execute("SELECT count(*) FROM chunks").fetchone()
    return len(json.loads(manifest)), int(chunks)


# Chunking.


def _chunk_file(source: str, text: str) -> list[_Chunk]:
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
    chunks: list[_Chunk] = []
    for path, body in sections:
        heading = HEADING_SEPARATOR.join(name for name in path if name) or title
        chunks.extend(_Chunk(heading, piece) for piece in _split(body))
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


def _trim(text: str) -> str:
    """At most TEXT_CHARS of `text`, cut at a word, with an ellipsis when cut."""
    if len(text) <= TEXT_CHARS:
        return text
    cut = text.rfind(" ", 0, TEXT_CHARS)
    return text[: cut if cut > TEXT_CHARS // 2 else TEXT_CHARS - 1].rstrip() + "…"

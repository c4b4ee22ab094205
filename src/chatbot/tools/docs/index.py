"""The docs index: a folder of docs in a SQLite FTS5 table, ranked by BM25.

One index per process, opened at start: building it reads and chunks every file, which
is work for start-up, not for a turn. The index is a file (DOCS_INDEX) with a manifest of
the files it was built from; a process that finds the manifest matching the folder reuses
it without reading a single doc, so it is rebuilt only when files change. A rebuild
writes a temporary file beside it and `os.replace`s it into place, so the workers of a
cluster starting at once never open a half-built index (each may build one; the last
rename wins, and they are all the same).

User queries are free text, never FTS5 syntax: each word is quoted and the words are
OR-ed, so nothing a user types can make the search fail.
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
from dataclasses import dataclass
from pathlib import Path

from chatbot.tools.docs.chunks import SUFFIXES, chunk_file

log = logging.getLogger("chatbot.docs")

SCHEMA_VERSION = 1
"""Bumped whenever the index's tables or chunking change: an older index is rebuilt."""

TEXT_CHARS = 1200
"""The most text one hit returns."""
MAX_LIMIT = 20
MAX_QUERY_TERMS = 32
STALE_BUILD_SECONDS = 3600.0
"""A temporary build file older than this was left by a process that died mid-build."""

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
                for position, chunk in enumerate(chunk_file(entry.path, text)):
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


def _trim(text: str) -> str:
    """At most TEXT_CHARS of `text`, cut at a word, with an ellipsis when cut."""
    if len(text) <= TEXT_CHARS:
        return text
    cut = text.rfind(" ", 0, TEXT_CHARS)
    return text[: cut if cut > TEXT_CHARS // 2 else TEXT_CHARS - 1].rstrip() + "…"

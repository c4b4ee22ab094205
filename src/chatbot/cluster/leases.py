"""Who holds each session: one worker at a time, for TURN_LEASE_SECONDS, renewed.

The holder is the only worker that writes a session (its turn, its messages, its
events); every other worker asks it. A lease that is not renewed in time (its worker
died) expires, and the next worker to need the session takes it, and with it any turn
that was running (`turns`, scored by when the lease runs out).
"""

from __future__ import annotations

import time

from chatbot.cluster.keys import Keys
from chatbot.cluster.link import Link
from chatbot.cluster.scripts import RELEASE, RENEW

STEAL = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""
RENEW_CHUNK = 1000


class Leases:
    """This worker's side of the per-session leases."""

    def __init__(self, link: Link, keys: Keys, token: str, seconds: float) -> None:
        self.link = link
        self.keys = keys
        self.token = token
        self.ms = int(seconds * 1000)
        self._renew = link.redis.register_script(RENEW)
        self._release = link.redis.register_script(RELEASE)
        self._steal = link.redis.register_script(STEAL)

    async def acquire(self, session_id: str) -> bool:
        """Take the session's lease if nobody holds it."""
        redis = self.link.redis
        taken = await self.link.call(
            redis.set(self.keys.lease(session_id), self.token, nx=True, px=self.ms)
        )
        return bool(taken)

    async def holder(self, session_id: str) -> str | None:
        """The token (the inbox) of the worker holding the session, if any."""
        value = await self.link.call(self.link.redis.get(self.keys.lease(session_id)))
        return value.decode() if value is not None else None

    async def steal(self, session_id: str, dead: str) -> None:
        """Free a lease whose worker is gone (only if that worker still has it)."""
        await self.link.call(self._steal(keys=[self.keys.lease(session_id)], args=[dead]))

    async def renew(self, session_ids: list[str], running: list[str]) -> list[str]:
        """Extend this worker's leases; returns the sessions another worker took."""
        lost: list[str] = []
        for start in range(0, len(session_ids), RENEW_CHUNK):
            chunk = session_ids[start : start + RENEW_CHUNK]
            keys = [self.keys.lease(session_id) for session_id in chunk]
            indexes: list[int] = await self.link.call(
                self._renew(keys=keys, args=[self.token, self.ms])
            )
            lost.extend(chunk[index - 1] for index in indexes)
        if running:
            until = int(time.time() * 1000) + self.ms
            scores: dict[str, float] = {session_id: until for session_id in running}
            pipe = self.link.redis.pipeline(transaction=False)
            pipe.zadd(self.keys.turns, scores, xx=True)
            for session_id in running:
                if (owned := self.keys.owned_turns(session_id)) is not None:
                    pipe.zadd(owned, {session_id: until}, xx=True)
                    pipe.pexpireat(owned, until)
            await self.link.execute(pipe)
        return lost

    async def release(self, session_ids: list[str]) -> None:
        """Give up these leases (the sessions left this worker's memory)."""
        for start in range(0, len(session_ids), RENEW_CHUNK):
            keys = [self.keys.lease(sid) for sid in session_ids[start : start + RENEW_CHUNK]]
            await self.link.call(self._release(keys=keys, args=[self.token]))

    async def orphan(self, session_ids: list[str]) -> None:
        """Offer these running turns for takeover now, not when the lease would run out."""
        if session_ids:
            scores: dict[str, float] = {session_id: 0 for session_id in session_ids}
            await self.link.call(self.link.redis.zadd(self.keys.turns, scores, xx=True))

    async def turn_was_running(self, session_id: str) -> bool:
        """True when the session's last holder was running a turn it never finished."""
        score = await self.link.call(self.link.redis.zscore(self.keys.turns, session_id))
        return score is not None

    async def orphaned_turns(self) -> list[str]:
        """Sessions whose turn was running when their holder's lease ran out."""
        now = int(time.time() * 1000)
        found = await self.link.call(self.link.redis.zrangebyscore(self.keys.turns, 0, now))
        return [value.decode() for value in found]

    async def forget_turn(self, session_id: str) -> None:
        """The turn is recovered or abandoned: stop offering it."""
        pipe = self.link.redis.pipeline(transaction=False)
        pipe.zrem(self.keys.turns, session_id)
        if (owned := self.keys.owned_turns(session_id)) is not None:
            pipe.zrem(owned, session_id)
        await self.link.execute(pipe)

    async def running(self, session_ids: list[str]) -> set[str]:
        """Which of these sessions run a turn whose lease has not run out."""
        if not session_ids:
            return set()
        now = int(time.time() * 1000)
        scores = await self.link.call(self.link.redis.zmscore(self.keys.turns, session_ids))
        return {sid for sid, score in zip(session_ids, scores, strict=True) if (score or 0) >= now}

    async def running_turns(self, session_id: str) -> int:
        """The running turns (lease not run out, any worker) of the owner's other sessions."""
        owned = self.keys.owned_turns(session_id)
        if owned is None:
            return 0
        now = int(time.time() * 1000)
        pipe = self.link.redis.pipeline(transaction=False)
        pipe.zcount(owned, now, "+inf")
        pipe.zscore(owned, session_id)
        count, own = await self.link.execute(pipe)
        return int(count) - (own is not None and own >= now)

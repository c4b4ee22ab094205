"""Lua scripts that make a lease check and the write it guards one atomic step.

A worker that lost a session's lease (it paused past TURN_LEASE_SECONDS and another
worker took over) must not write: every append, renewal and release names the token
it believes holds the lease, and Redis refuses when that is no longer so.
"""

from __future__ import annotations

APPEND = """
-- What one outbox trip carries, for every session at once: one call, not one per session.
-- KEYS: per session, its lease, events stream and live channel
-- ARGV: token, maxlen, ttl_ms, then per session: how many frames, then (entry id, frame)
-- pairs, the entry id `seq-0` written by the worker.
-- Returns the (1-based) positions of the sessions whose lease this worker no longer holds.
local lost = {}
local at = 4
for s = 1, #KEYS / 3 do
  local lease, stream, channel = KEYS[3 * s - 2], KEYS[3 * s - 1], KEYS[3 * s]
  local count = tonumber(ARGV[at])
  if redis.call('GET', lease) ~= ARGV[1] then
    lost[#lost + 1] = s
  else
    for i = at + 1, at + 2 * count, 2 do
      redis.call('XADD', stream, 'MAXLEN', '~', ARGV[2], ARGV[i], 'f', ARGV[i + 1])
    end
    redis.call('PEXPIRE', stream, ARGV[3])
    if count == 1 then
      redis.call('PUBLISH', channel, ARGV[at + 2])
    else
      local frames = {}
      for i = at + 2, at + 2 * count, 2 do
        frames[#frames + 1] = ARGV[i]
      end
      redis.call('PUBLISH', channel, table.concat(frames))
    end
  end
  at = at + 1 + 2 * count
end
return lost
"""

RENEW = """
-- KEYS: the leases of this worker's sessions; ARGV: token, ttl_ms
-- Returns the indexes (1-based) of leases now held by another worker. A lease that is
-- simply gone (Redis restarted empty) is taken again: nobody else holds it.
local lost = {}
for i, key in ipairs(KEYS) do
  local holder = redis.call('GET', key)
  if holder == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
  elseif not holder then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
  else
    lost[#lost + 1] = i
  end
end
return lost
"""

RELEASE = """
-- KEYS: leases; ARGV: token. Frees only what this worker still holds.
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then redis.call('DEL', key) end
end
return 0
"""

COUNT_STREAM = """
-- KEYS: a principal's streams; ARGV: member, now_ms, until_ms, limit
-- Drops the streams whose worker stopped renewing them, then adds this one if there is room.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return 1
"""

"""The Lua scripts of the ``redis`` store (:mod:`backends.redis_store`), one per operation
that must be atomic on the server.

Key names, as in the store's docstring: ``{m}`` is a file's manifest (``TB1 <version>
<chunks> <size>\\n`` and, for small files, the bytes), ``{m}:_head`` the first chunk of
the published version (uploaded as ``{m}:{version}:0``, renamed on publish, so a reader
gets manifest and first chunk in one ``MGET``), ``{m}:{version}:{n}`` its chunk ``n`` >= 1,
``{m}:_retired`` the list, oldest first, of replaced versions (``"<version> <chunks>"``)
whose chunks are kept for a grace period, and ``{prefix}:{session}:_kinds`` the session's
index. The scripts compute key names themselves, which a standalone server (or a primary
with replicas) accepts and Redis Cluster would not.
"""

from __future__ import annotations

RETIRED_SUFFIX = "_retired"
"""Suffix of a file's list of replaced versions (kinds start with a letter: no collision)."""

HEAD_SUFFIX = "_head"
"""Suffix of the key holding the first chunk of a file's published version."""

# Shared by the scripts below. ``unlink_chunks`` removes one version's chunks; ``retire``
# keeps a replaced version's chunks after the first (a reader got that one with the
# manifest) for ``grace`` ms, never longer than they had left, and appends the version to
# the file's retired list, so that a delete removes them at once. The list keeps the
# ``keep`` newest versions: older ones, and those whose grace has run out, go.
_CHUNKS = """
local function unlink_chunks(manifest, version, n)
  for i = 0, tonumber(n) - 1 do redis.call('UNLINK', manifest .. ':' .. version .. ':' .. i) end
end
"""

_RETIRE = _CHUNKS + """
local function retire(manifest, version, n, grace, keep)
  if n <= 1 then return end
  if grace <= 0 or keep <= 0 then return unlink_chunks(manifest, version, n) end
  for i = 1, n - 1 do
    local chunk = manifest .. ':' .. version .. ':' .. i
    if redis.call('PTTL', chunk) > grace then redis.call('PEXPIRE', chunk, grace) end
  end
  local retired = manifest .. ':_retired'
  redis.call('RPUSH', retired, version .. ' ' .. n)
  redis.call('PEXPIRE', retired, grace)
  while true do
    local oldest = redis.call('LINDEX', retired, 0)
    if not oldest then break end
    local v, on = string.match(oldest, '^(%S+) (%d+)$')
    local gone = redis.call('EXISTS', manifest .. ':' .. v .. ':1') == 0
    if not gone and redis.call('LLEN', retired) <= keep then break end
    unlink_chunks(manifest, v, on)
    redis.call('LPOP', retired)
  end
end
"""

# Publish (or, with mode 'check', only check the quota for) one file.
# KEYS[1] manifest, KEYS[2] session index.
# ARGV: mode, kind, files-per-session limit (0: none), manifest key prefix of the session,
#       ttl_ms, manifest value, version, chunk count, grace_ms, replaced versions to keep.
# Running it twice with the same arguments (a retry after a lost reply) changes nothing more.
PUBLISH = _RETIRE + """
local kind, limit, base = ARGV[2], tonumber(ARGV[3]), ARGV[4]
local ttl, version, n = ARGV[5], ARGV[7], tonumber(ARGV[8])
local old = redis.call('GETRANGE', KEYS[1], 0, 255)
local ov, on = string.match(old, '^TB1 (%S+) (%d+) ')
if n > 0 and ov == version then return {'ok', 0} end  -- published already: a retry
if limit > 0 and redis.call('EXISTS', KEYS[1]) == 0 then
  local live = 0
  for _, member in ipairs(redis.call('SMEMBERS', KEYS[2])) do
    if member ~= kind then
      if redis.call('EXISTS', base .. member) == 1 then
        live = live + 1
      else
        redis.call('SREM', KEYS[2], member)
      end
    end
  end
  if live >= limit then return {'quota', live} end
end
if ARGV[1] == 'check' then return {'ok', 0} end
for i = 0, n - 1 do
  if redis.call('PEXPIRE', KEYS[1] .. ':' .. version .. ':' .. i, ttl) == 0 then
    return {'lost', i}
  end
end
redis.call('SET', KEYS[1], ARGV[6], 'PX', ttl)
if n > 0 then
  redis.call('RENAME', KEYS[1] .. ':' .. version .. ':0', KEYS[1] .. ':_head')
else
  redis.call('UNLINK', KEYS[1] .. ':_head')
end
redis.call('SADD', KEYS[2], kind)
if redis.call('PTTL', KEYS[2]) < tonumber(ttl) then redis.call('PEXPIRE', KEYS[2], ttl) end
if ov and ov ~= version then
  retire(KEYS[1], ov, tonumber(on), tonumber(ARGV[9]), tonumber(ARGV[10]))
end
return {'ok', 0}
"""

# After a put failed on the client's side: remove the chunks of its version unless the
# server shows that version was published (its publish ran, only the reply was lost) -
# the manifest names it, or it was published and replaced since. Returns 'published' or
# 'discarded'. KEYS[1] manifest; ARGV: version, chunk count.
DISCARD = _CHUNKS + """
local version, n = ARGV[1], ARGV[2]
local head = redis.call('GETRANGE', KEYS[1], 0, 255)
if string.match(head, '^TB1 (%S+) ') == version then return 'published' end
for _, member in ipairs(redis.call('LRANGE', KEYS[1] .. ':_retired', 0, -1)) do
  if member == version .. ' ' .. n then return 'published' end
end
unlink_chunks(KEYS[1], version, n)
return 'discarded'
"""

# Delete files with their chunks, replaced versions included. KEYS[1] session index;
# ARGV[1] manifest key prefix of the session; ARGV[2..] kinds to delete (none given:
# every kind in the index). Returns how many files were removed.
DELETE = _CHUNKS + """
local kinds = {}
if #ARGV > 1 then
  for i = 2, #ARGV do kinds[#kinds + 1] = ARGV[i] end
else
  kinds = redis.call('SMEMBERS', KEYS[1])
end
local removed = 0
for _, kind in ipairs(kinds) do
  local key = ARGV[1] .. kind
  local head = redis.call('GETRANGE', key, 0, 255)
  if head ~= '' then
    local v, n = string.match(head, '^TB1 (%S+) (%d+) ')
    if v then unlink_chunks(key, v, n) end
    redis.call('UNLINK', key, key .. ':_head')
    removed = removed + 1
  end
  for _, member in ipairs(redis.call('LRANGE', key .. ':_retired', 0, -1)) do
    local v, n = string.match(member, '^(%S+) (%d+)$')
    unlink_chunks(key, v, n)
  end
  redis.call('UNLINK', key .. ':_retired')
  redis.call('SREM', KEYS[1], kind)
end
return removed
"""

# Drop index entries whose file Redis has expired. KEYS[1] session index; ARGV[1] manifest
# key prefix of the session.
PRUNE = """
local pruned = 0
for _, kind in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. kind) == 0 then
    redis.call('SREM', KEYS[1], kind)
    pruned = pruned + 1
  end
end
return pruned
"""

/**
 * Lua scripts of the per-lane turn protocol. Every key is passed in KEYS[] (Cluster: one hash tag).
 * Every write after the lease is taken checks the fencing token first, so a worker that stalled
 * past its lease (GC pause, partition, SIGSTOP) and wakes up changes nothing.
 */

/**
 * KEYS: lease, lane hash, in-flight set, parked set. ARGV: lease ms, lane hash TTL s, a random part
 * from the caller, lane, now ms, '1' to respect the lane's not-before time. Returns the new fencing
 * token `<counter>.<random>`, 0 when the lease is taken, or { 'parked', not-before } when the lane
 * is parked until later (checked here, in the same step, so no turn parks in between). The lane is
 * in flight until its lease runs out (renewals push that back).
 */
export const ACQUIRE = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if ARGV[6] == '1' then
  local nb = tonumber(redis.call('HGET', KEYS[2], 'nb') or '0')
  if nb > tonumber(ARGV[5]) then return { 'parked', tostring(nb) } end
end
local fence = redis.call('HINCRBY', KEYS[2], 'fence', 1) .. '.' .. ARGV[3]
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('SET', KEYS[1], fence, 'PX', ARGV[1])
redis.call('ZADD', KEYS[3], tonumber(ARGV[5]) + tonumber(ARGV[1]), ARGV[4])
redis.call('ZREM', KEYS[4], ARGV[4])
return fence
`;

/** KEYS: lease, in-flight set. ARGV: fence, lease ms, lane, now ms. 1 when still ours (and extended). */
export const RENEW = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], tonumber(ARGV[4]) + tonumber(ARGV[2]), ARGV[3])
return 1
`;

/**
 * KEYS: lease, lane hash, inbox, turn items. ARGV: fence.
 * Moves the inbox into the turn in flight unless its reply is already decided ('locked'): messages
 * that arrive while a turn waits (debounce, backoff) join it; later ones wait for the next turn.
 * A turn holds one class of items: patient messages, events from Chatwoot, or one business
 * message (/v1) or one re-engagement. Only the inbox's leading items of the turn's class join, so
 * an agent's reply, an API send and the patient's messages are handled in the order they arrived,
 * each by its own kind of turn.
 * Returns false when the lease is lost, else { turn meta or '', items… }.
 */
export const JOIN = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
local function class(raw)
  local ok, item = pcall(cjson.decode, raw)
  if ok and type(item) == 'table' then
    if item.kind == 'chatwoot' then return 'a' end
    if item.kind == 'api' or item.kind == 'reengage' then return 'one' end
  end
  return 'm'
end
if not redis.call('HGET', KEYS[2], 'locked') then
  local inTurn = redis.call('LINDEX', KEYS[4], 0)
  local head = inTurn or redis.call('LINDEX', KEYS[3], 0)
  if head then
    local cls = class(head)
    local items = redis.call('LRANGE', KEYS[3], 0, -1)
    local take = 0
    for i = 1, #items do
      if class(items[i]) ~= cls or (cls == 'one' and (inTurn or take > 0)) then break end
      take = i
    end
    for i = 1, take, 500 do
      redis.call('RPUSH', KEYS[4], unpack(items, i, math.min(i + 499, take)))
    end
    if take > 0 then redis.call('LTRIM', KEYS[3], take, -1) end
  end
end
local meta = redis.call('HGET', KEYS[2], 'turn') or ''
local result = { meta }
local items = redis.call('LRANGE', KEYS[4], 0, -1)
for i = 1, #items do result[i + 1] = items[i] end
return result
`;

/**
 * KEYS: lease, lane hash. ARGV: fence, now ms, window ms, max turns. Admits a new turn of the chat
 * when fewer than `max` started in the current window: returns 0 (admitted, counted), else when
 * the window ends (the turn waits and takes every message that arrives meanwhile), -1 lease lost.
 */
export const ADMIT = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local now = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local start = tonumber(redis.call('HGET', KEYS[2], 'rateStart') or '0')
local count = tonumber(redis.call('HGET', KEYS[2], 'rateCount') or '0')
if now - start >= window then
  start = now
  count = 0
end
if count >= tonumber(ARGV[4]) then return start + window end
redis.call('HSET', KEYS[2], 'rateStart', start, 'rateCount', count + 1)
return 0
`;

/** KEYS: lease, hash. ARGV: fence, field, value, field, value… 1 when written. */
export const SAVE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], unpack(ARGV, 2, #ARGV))
return 1
`;

/**
 * KEYS: lease, lane hash, turn items, in-flight set, parked set. ARGV: fence, not-before ms, lane,
 * number K of kept items, items…, then field/value pairs for the lane hash. Parks the turn until
 * not-before and lets the lease go; with K >= 0 the turn's items are replaced by the K given
 * (K = -1 keeps them).
 */
export const DEFER = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local k = tonumber(ARGV[4])
if k >= 0 then
  redis.call('DEL', KEYS[3])
  if k > 0 then redis.call('RPUSH', KEYS[3], unpack(ARGV, 5, 4 + k)) end
end
redis.call('HSET', KEYS[2], 'nb', ARGV[2])
local first = 5 + math.max(k, 0)
if #ARGV >= first then redis.call('HSET', KEYS[2], unpack(ARGV, first, #ARGV)) end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[4], ARGV[3])
redis.call('ZADD', KEYS[5], ARGV[2], ARGV[3])
return 1
`;

/**
 * KEYS: lease, lane hash. ARGV: fence. The turn in flight threw: counts it on the lane (the count
 * lives until the turn finishes) and returns the count, or -1 when the lease was lost.
 */
export const FAILED = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
return redis.call('HINCRBY', KEYS[2], 'failures', 1)
`;

/**
 * KEYS: lease, in-flight set. ARGV: fence, lane, now ms. Lets the lease go without other changes;
 * whatever the turn left unfinished is for the next sweep to re-arm.
 */
export const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('ZADD', KEYS[2], 'XX', ARGV[3], ARGV[2])
end
return 1
`;

/**
 * Commits a finished turn. KEYS: lease, lane hash, inbox, turn items, pending, history, chat state,
 * desk inbox, desk backlog, in-flight set, parked set, turn timings. ARGV: fence, lane, history
 * max, history TTL s, chat state TTL s, N, N history entries, M, M desk items, desk lane, now ms,
 * timing (JSON, or '' for none), timings kept, then field/value pairs for the chat state.
 * The desk items (hand-over steps, mirrors) are queued on the chat's desk lane in the same step,
 * so a retried turn never queues them twice; its timing likewise. Returns 0 lease lost, 1 done
 * (lane idle), 2 more waiting.
 */
export const FINISH = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local n = tonumber(ARGV[6])
if n > 0 then
  redis.call('RPUSH', KEYS[6], unpack(ARGV, 7, 6 + n))
  redis.call('LTRIM', KEYS[6], -tonumber(ARGV[3]), -1)
  redis.call('EXPIRE', KEYS[6], ARGV[4])
end
local m = tonumber(ARGV[7 + n])
if m > 0 then
  redis.call('RPUSH', KEYS[8], unpack(ARGV, 8 + n, 7 + n + m))
  redis.call('ZADD', KEYS[5], 'NX', ARGV[9 + n + m], ARGV[8 + n + m])
  redis.call('INCRBY', KEYS[9], m)
end
if ARGV[10 + n + m] ~= '' then
  redis.call('LPUSH', KEYS[12], ARGV[10 + n + m])
  redis.call('LTRIM', KEYS[12], 0, tonumber(ARGV[11 + n + m]) - 1)
  redis.call('EXPIRE', KEYS[12], ARGV[4])
end
local fields = 12 + n + m
if #ARGV >= fields then
  redis.call('HSET', KEYS[7], unpack(ARGV, fields, #ARGV))
  redis.call('EXPIRE', KEYS[7], ARGV[5])
end
redis.call('DEL', KEYS[4])
redis.call('HDEL', KEYS[2], 'turn', 'locked', 'nb', 'failures')
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[10], ARGV[2])
redis.call('ZREM', KEYS[11], ARGV[2])
local first = redis.call('LINDEX', KEYS[3], 0)
if first then
  local ok, item = pcall(cjson.decode, first)
  if ok and type(item) == 'table' and tonumber(item.receivedAt) then
    redis.call('ZADD', KEYS[5], 'XX', tonumber(item.receivedAt), ARGV[2])
  end
  return 2
end
redis.call('ZREM', KEYS[5], ARGV[2])
return 1
`;

/**
 * KEYS: lease, old history, old state, new history, new state. ARGV: fence.
 * The patient changed number (system user_changed_number): the chat's history and state move to
 * the new number's chat, unless that chat already has its own. Returns 1 moved, 0 not.
 */
export const MOVE_CHAT = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('EXISTS', KEYS[4]) == 1 or redis.call('EXISTS', KEYS[5]) == 1 then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('RENAME', KEYS[2], KEYS[4]) end
if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('RENAME', KEYS[3], KEYS[5]) end
return 1
`;

/**
 * KEYS: lease, handoff. ARGV: fence, TTL s (0: back to the bot), field/value pairs.
 * The hand-over record lives only while a human has the chat, for at most its TTL.
 */
export const HANDOFF = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if tonumber(ARGV[2]) <= 0 then
  redis.call('DEL', KEYS[2])
  return 1
end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], unpack(ARGV, 3, #ARGV))
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 1
`;

/**
 * KEYS: lease, desk record. ARGV: fence, record TTL s, field/value pairs.
 * Marks a desk post as in flight (its outcome unknown until it is shifted off).
 */
export const DESK_MARK = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], unpack(ARGV, 3, #ARGV))
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 1
`;

/**
 * A desk step is done. KEYS: lease, turn items, desk record, desk backlog, own-message key.
 * ARGV: fence, record TTL s, own-message TTL s (0: none), then field/value pairs for the record.
 * Drops the step from the turn, clears the in-flight mark, records the ids Chatwoot gave us.
 */
export const DESK_SHIFT = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if not redis.call('LPOP', KEYS[2]) then return 1 end
redis.call('HDEL', KEYS[3], 'posting')
if #ARGV >= 4 then redis.call('HSET', KEYS[3], unpack(ARGV, 4, #ARGV)) end
if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('EXPIRE', KEYS[3], ARGV[2]) end
if tonumber(redis.call('DECR', KEYS[4])) < 0 then redis.call('SET', KEYS[4], 0) end
if tonumber(ARGV[3]) > 0 then redis.call('SET', KEYS[5], '1', 'EX', ARGV[3]) end
return 1
`;

/**
 * KEYS: chat lease, chat lane hash, chat inbox, chat turn items, history, chat state, handoff,
 * desk record, desk lease, desk lane hash, desk inbox, desk turn items, pending, desk backlog,
 * in-flight set, parked set, chat cost, turn timings. ARGV: chat lane, desk lane. Returns 1 when
 * the chat had anything.
 */
export const ERASE = `
local found = redis.call('EXISTS', KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[11], KEYS[12])
local steps = redis.call('LLEN', KEYS[11]) + redis.call('LLEN', KEYS[12])
if steps > 0 and tonumber(redis.call('DECRBY', KEYS[14], steps)) < 0 then redis.call('SET', KEYS[14], 0) end
redis.call('DEL', KEYS[1], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[11], KEYS[12], KEYS[17], KEYS[18])
redis.call('HDEL', KEYS[2], 'turn', 'locked', 'nb', 'failures')
redis.call('HDEL', KEYS[10], 'turn', 'locked', 'nb', 'failures')
redis.call('ZREM', KEYS[13], ARGV[1], ARGV[2])
redis.call('ZREM', KEYS[15], ARGV[1], ARGV[2])
redis.call('ZREM', KEYS[16], ARGV[1], ARGV[2])
if found > 0 then return 1 end
return 0
`;

/**
 * Dedup and enqueue as one atomic step. Every key is passed in KEYS[], all under
 * one hash tag, so the script runs on Redis Cluster too.
 *
 * KEYS[1]  pending lanes (sorted set, score = arrival ms of the lane's oldest waiting item)
 * KEYS[2]  unhandled items (capped list)
 * KEYS[3..] pairs per item: dedup key, lane inbox
 * ARGV[1]  now (ms)            ARGV[2] dedup TTL (s)
 * ARGV[3]  unhandled cap       ARGV[4] number U of unhandled entries
 * ARGV[5..4+U]  unhandled raw entries
 * then pairs per item: lane id, item JSON
 *
 * Returns per item a pair {outcome, episode}: outcome 1 new (enqueued), 2 duplicate whose lane still
 * waits (wake it again: the first wake-up may have been lost), 0 duplicate. `episode` is the lane's
 * pending score: it names this stretch of pending work, so the wake-up job id `<lane>.<episode>`
 * never collides with the job of a turn that is finishing right now (BullMQ ignores an add whose id
 * is still active, which would lose the wake-up).
 */
export const INGEST_SCRIPT = `
local u = tonumber(ARGV[4])
for i = 1, u do
  redis.call('LPUSH', KEYS[2], ARGV[4 + i])
end
if u > 0 then
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
end
local result = {}
local n = (#KEYS - 2) / 2
for i = 1, n do
  local dedupKey = KEYS[1 + 2 * i]
  local inboxKey = KEYS[2 + 2 * i]
  local lane = ARGV[3 + u + 2 * i]
  local item = ARGV[4 + u + 2 * i]
  if redis.call('SET', dedupKey, '1', 'NX', 'EX', ARGV[2]) then
    redis.call('RPUSH', inboxKey, item)
    redis.call('ZADD', KEYS[1], 'NX', ARGV[1], lane)
    result[i] = { 1, redis.call('ZSCORE', KEYS[1], lane) }
  else
    local episode = redis.call('ZSCORE', KEYS[1], lane)
    if episode then
      result[i] = { 2, episode }
    else
      result[i] = { 0, '' }
    end
  end
end
return result
`;

/**
 * An idempotent request (POST /v1/messages): its first answer is remembered and its item enqueued
 * in one atomic step, so concurrent duplicates send once and all get the same answer.
 *
 * KEYS[1] idempotency key   KEYS[2] lane inbox   KEYS[3] pending lanes
 * ARGV[1] answer (JSON)     ARGV[2] TTL (s)      ARGV[3] item JSON, or '' when nothing is enqueued
 * ARGV[4] lane              ARGV[5] now (ms)
 *
 * Returns {first (1) or replay (0), the answer to give, the lane's pending episode or ''}.
 */
export const ENQUEUE_ONCE_SCRIPT = `
local prior = redis.call('GET', KEYS[1])
if prior then
  return { 0, prior, redis.call('ZSCORE', KEYS[3], ARGV[4]) or '' }
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
if ARGV[3] == '' then return { 1, ARGV[1], '' } end
redis.call('RPUSH', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[3], 'NX', ARGV[5], ARGV[4])
return { 1, ARGV[1], redis.call('ZSCORE', KEYS[3], ARGV[4]) }
`;

/**
 * A dead letter retried from /admin/queues: its turn's items go back into their lane's inbox, in
 * one atomic step, the way ingest puts them there — minus the dedup check, since their dedup keys
 * are set already. The lane then runs them in its own next turn (never a copy beside it).
 *
 * KEYS[1] the dead letter's job hash (BullMQ's)   KEYS[2] lane inbox   KEYS[3] pending lanes
 * KEYS[4] desk backlog counter                     KEYS[5] the chat's history
 * ARGV[1] now (ms)   ARGV[2] lane   ARGV[3] N items   ARGV[4..3+N] item JSON
 * ARGV[4+N..] message ids whose history entry is dropped
 *
 * The mark `tawasulRequeuedAt` in the job hash makes this happen once per dead letter, however
 * often it is retried: a second retry (or a retried job that stalled and runs again) changes
 * nothing. The patient's messages were committed to the history by the turn that gave up; their
 * entry is dropped, so the re-run turn sees the history as it was and commits them once again.
 * Desk steps count in the desk backlog as when their turn first queued them.
 *
 * Returns {1, episode} re-queued (episode: the lane's pending score, for the wake-up job id),
 * {0, time of the first re-run} already re-run, {-1, ''} the job is gone.
 */
export const REQUEUE_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 0 then return { -1, '' } end
local prior = redis.call('HGET', KEYS[1], 'tawasulRequeuedAt')
if prior then return { 0, prior } end
redis.call('HSET', KEYS[1], 'tawasulRequeuedAt', ARGV[1])
local n = tonumber(ARGV[3])
local desk = 0
for i = 4, 3 + n do
  redis.call('RPUSH', KEYS[2], ARGV[i])
  local ok, item = pcall(cjson.decode, ARGV[i])
  if ok and type(item) == 'table' and item.kind == 'desk' then desk = desk + 1 end
end
if desk > 0 then redis.call('INCRBY', KEYS[4], desk) end
if #ARGV > 3 + n then
  local ids = {}
  for i = 4 + n, #ARGV do ids[ARGV[i]] = true end
  for _, raw in ipairs(redis.call('LRANGE', KEYS[5], 0, -1)) do
    local ok, entry = pcall(cjson.decode, raw)
    if ok and type(entry) == 'table' and entry.role == 'user' and type(entry.ids) == 'table' and #entry.ids > 0 then
      local mine = true
      for _, id in ipairs(entry.ids) do
        if not ids[id] then mine = false end
      end
      if mine then redis.call('LREM', KEYS[5], 1, raw) end
    end
  end
end
redis.call('ZADD', KEYS[3], 'NX', ARGV[1], ARGV[2])
return { 1, redis.call('ZSCORE', KEYS[3], ARGV[2]) }
`;

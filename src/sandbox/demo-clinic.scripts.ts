/**
 * The demo clinic's writes, each one atomic step with its Idempotency-Key, as ENQUEUE_ONCE_SCRIPT
 * does for /v1: the first request with a key stores its answer in the same step as its booking, so
 * concurrent duplicates book once and all get that answer. The answers (JSON `{status, body}`) and
 * the booking JSON are made by the caller; the scripts only choose between them, and compare
 * strings rather than decode JSON. Every key is passed in KEYS[], all under one hash tag.
 *
 * KEYS[1] idempotency key   KEYS[2] taken slots (hash: slot id → booking id)
 * KEYS[3] bookings (hash: booking id → JSON)
 * ARGV[1] '1' when the request has an Idempotency-Key, '0' otherwise   ARGV[2] TTL (s)
 *
 * Each returns {outcome, answer}: outcome 1 acted (the answer is new), 0 a replay (the stored
 * answer), 2 nothing done and nothing stored: the caller reads again and retries.
 */

const REPLAY = `
if ARGV[1] == '1' then
  local prior = redis.call('GET', KEYS[1])
  if prior then return { 0, prior } end
end
`;

const ANSWER = `
if ARGV[1] == '1' then redis.call('SET', KEYS[1], answer, 'EX', ARGV[2]) end
return { 1, answer }
`;

const KEEP = `
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[3], ARGV[2])
`;

/**
 * ARGV[3] slot id   ARGV[4] new booking id   ARGV[5] booking JSON   ARGV[6] most bookings kept
 * ARGV[7] created answer   ARGV[8] slot-taken answer   ARGV[9] calendar-full answer
 * Outcome 2: the booking id is in use (draw another).
 */
export const DEMO_BOOK_SCRIPT = `${REPLAY}
if redis.call('HEXISTS', KEYS[3], ARGV[4]) == 1 then return { 2, '' } end
local answer
if redis.call('HEXISTS', KEYS[2], ARGV[3]) == 1 then
  answer = ARGV[8]
elseif redis.call('HLEN', KEYS[3]) >= tonumber(ARGV[6]) then
  answer = ARGV[9]
else
  redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
  redis.call('HSET', KEYS[3], ARGV[4], ARGV[5])
${KEEP}
  answer = ARGV[7]
end
${ANSWER}`;

/**
 * A change to an existing booking (ARGV[3] its id, ARGV[4] its JSON as the caller read it, '' when
 * it read none, ARGV[5] its slot id as read). Outcome 2 when the booking changed since the caller
 * read it; the answer ARGV[notFound] when there is none; else `change` runs and sets `answer`.
 */
const changeBooking = (notFound: number, change: string): string => `${REPLAY}
local current = redis.call('HGET', KEYS[3], ARGV[3]) or ''
if current ~= ARGV[4] then return { 2, '' } end
local answer
if current == '' then
  answer = ARGV[${notFound}]
else
${change}
end
${ANSWER}`;

/** The booking's old slot, unless another booking holds it by now. */
const FREE_OLD_SLOT = `if redis.call('HGET', KEYS[2], ARGV[5]) == ARGV[3] then redis.call('HDEL', KEYS[2], ARGV[5]) end`;

/**
 * ARGV[3..5] as in changeBooking   ARGV[6] new slot id   ARGV[7] moved booking JSON
 * ARGV[8] moved answer   ARGV[9] not-found answer   ARGV[10] slot-taken answer
 */
export const DEMO_RESCHEDULE_SCRIPT = changeBooking(
  9,
  `
  local owner = redis.call('HGET', KEYS[2], ARGV[6])
  if owner and owner ~= ARGV[3] then
    answer = ARGV[10]
  else
    ${FREE_OLD_SLOT}
    redis.call('HSET', KEYS[2], ARGV[6], ARGV[3])
    redis.call('HSET', KEYS[3], ARGV[3], ARGV[7])
${KEEP}
    answer = ARGV[8]
  end`,
);

/** ARGV[3..5] as in changeBooking   ARGV[6] cancelled answer   ARGV[7] not-found answer */
export const DEMO_CANCEL_SCRIPT = changeBooking(
  7,
  `
  ${FREE_OLD_SLOT}
  redis.call('HDEL', KEYS[3], ARGV[3])
${KEEP}
  answer = ARGV[6]`,
);

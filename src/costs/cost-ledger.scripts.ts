/**
 * Lua of the cost ledger. Every key is in KEYS[] and under the `{root}` hash tag, so a Cluster runs
 * the script on one node. Marking the wamid and adding to the day happen in one step: a crash
 * between them could otherwise lose a cost, or count it twice on the retry.
 */

/**
 * KEYS: once-key (side + wamid), day hash.
 * ARGV: once-key TTL s, day hash TTL s, count field, micro-USD field, micro-USD (integer).
 * Returns 1 when counted now, 0 when this wamid was already counted on this side.
 */
export const COST_RECORD = `
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
redis.call('HINCRBY', KEYS[2], ARGV[3], 1)
redis.call('HINCRBY', KEYS[2], ARGV[4], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 1
`;

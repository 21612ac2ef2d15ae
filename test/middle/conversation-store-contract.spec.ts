import { Clock } from '../../src/time/clock';
import { contractConfig, contractPricing, conversationStoreContract } from '../utils/conversation-store-contract';
import { InMemoryConversationStore } from '../utils/in-memory-conversation.store';
import { InMemoryOutboundRecords, RecordingCostLedger } from '../utils/in-memory-outbound-records';

// The Redis half of these cases: test/e2e/conversation-store-contract.e2e-spec.ts.
conversationStoreContract('in memory', () => {
  const config = contractConfig();
  const store = new InMemoryConversationStore(config);
  const ledger = new RecordingCostLedger();
  const records = new InMemoryOutboundRecords(store, config, contractPricing(config), ledger, new Clock());
  return Promise.resolve({
    store,
    records,
    ledger,
    config,
    enqueue: (lane, ...items) => Promise.resolve(store.enqueue(lane, ...items)),
    elapse: (ms) => Promise.resolve(store.elapse(ms)),
    now: () => store.clock.now(),
    record: (wamid) => Promise.resolve(records.record(wamid)),
    chatCostMicros: (chat) => Promise.resolve(Number(store.data.string(store.keys.chatCost(chat)) ?? 0)),
    close: () => Promise.resolve(),
  });
});

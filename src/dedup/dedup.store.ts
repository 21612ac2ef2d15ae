import { type IngestItem, type IngestResult } from './ingest-item';

/**
 * Port: remembers which items were seen and puts new ones into their lane's inbox, atomically.
 * Either every new item of the call is durably enqueued and marked seen, or none is.
 */
export abstract class DedupStore {
  /**
   * @param items     items to deduplicate and enqueue, in payload order
   * @param unhandled raw signed items we could not handle, kept in a capped list
   * @returns one outcome per item, same order
   */
  abstract ingest(items: readonly IngestItem[], unhandled: readonly string[]): Promise<IngestResult[]>;

  /**
   * Remembers `answer` under `onceKey` for `ttlSeconds` and enqueues `item` (when given), in one
   * atomic step; when `onceKey` is already known nothing is written and the first answer comes
   * back (`first` false). `episode`: the lane's pending episode, for its wake-up.
   */
  abstract enqueueOnce(request: {
    onceKey: string;
    answer: string;
    ttlSeconds: number;
    item?: IngestItem;
  }): Promise<{ first: boolean; answer: string; episode?: string }>;
}

import { startTestApp, inboxItems, type TestApp } from '../utils/test-app';
import { textPayload } from '../utils/meta-payloads';
import { chatLane } from '../../src/queue/queue.constants';
import { TEST_PHONE_NUMBER_ID } from '../utils/test-env';

describe('webhook smoke', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => {
    await t.close();
  });

  it('enqueues a signed text message once', async () => {
    const payload = textPayload({ text: 'مرحبا' });
    const first = await t.postSigned(payload);
    expect(first.status).toBe(200);
    const again = await t.postSigned(payload);
    expect(again.status).toBe(200);
    const items = await inboxItems(t, chatLane(TEST_PHONE_NUMBER_ID, '971500000001'));
    expect(items).toHaveLength(1);
    expect(items[0].raw.text.body).toBe('مرحبا');
  });
});

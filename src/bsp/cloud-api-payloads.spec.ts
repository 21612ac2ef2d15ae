import { markReadBody, recipientField, templateBody, textBody } from './cloud-api-payloads';

describe('Cloud API bodies', () => {
  it('builds a text body with previews off, callback data and a quoted message', () => {
    expect(textBody({ to: '971500000001', body: 'Hi', callbackData: 't1:0', replyTo: 'wamid.IN' })).toEqual({
      messaging_product: 'whatsapp',
      recipient_type: 'individual',
      to: '971500000001',
      biz_opaque_callback_data: 't1:0',
      context: { message_id: 'wamid.IN' },
      type: 'text',
      text: { preview_url: false, body: 'Hi' },
    });
  });

  it('leaves optional fields out rather than sending them empty', () => {
    const body = textBody({ to: '971500000001', body: 'Hi' });
    expect(Object.keys(body)).not.toContain('biz_opaque_callback_data');
    expect(Object.keys(body)).not.toContain('context');
  });

  it('builds a template body with deterministic language and text body parameters', () => {
    expect(
      templateBody({ to: '971500000001', name: 'reengage', language: 'ar', bodyParameters: ['أحمد', 'Sun 10:00'] }),
    ).toEqual({
      messaging_product: 'whatsapp',
      recipient_type: 'individual',
      to: '971500000001',
      type: 'template',
      template: {
        name: 'reengage',
        language: { policy: 'deterministic', code: 'ar' },
        components: [
          {
            type: 'body',
            parameters: [
              { type: 'text', text: 'أحمد' },
              { type: 'text', text: 'Sun 10:00' },
            ],
          },
        ],
      },
    });
    const bare = templateBody({ to: '971500000001', name: 'hello', language: 'en', callbackData: 'k' });
    expect(bare.template).toEqual({ name: 'hello', language: { policy: 'deterministic', code: 'en' } });
    expect(bare.biz_opaque_callback_data).toBe('k');
  });

  it('puts header, body and button parameters in the components Meta expects, in that order', () => {
    const body = templateBody({
      to: '971500000001',
      name: 'booking_reminder',
      language: 'en_US',
      headerParameters: ['Dr Salma'],
      bodyParameters: ['Ahmed', 'Fri 10:00'],
      buttons: [
        { subType: 'quick_reply', index: 0, parameter: 'CONFIRM_42' },
        { subType: 'url', index: 1, parameter: 'b42' },
      ],
    });
    expect(body.template).toEqual({
      name: 'booking_reminder',
      language: { policy: 'deterministic', code: 'en_US' },
      components: [
        { type: 'header', parameters: [{ type: 'text', text: 'Dr Salma' }] },
        {
          type: 'body',
          parameters: [
            { type: 'text', text: 'Ahmed' },
            { type: 'text', text: 'Fri 10:00' },
          ],
        },
        {
          type: 'button',
          sub_type: 'quick_reply',
          index: '0',
          parameters: [{ type: 'payload', payload: 'CONFIRM_42' }],
        },
        { type: 'button', sub_type: 'url', index: '1', parameters: [{ type: 'text', text: 'b42' }] },
      ],
    });
  });

  it('builds mark-read with and without the typing indicator', () => {
    expect(markReadBody({ messageId: 'wamid.IN', typing: true })).toEqual({
      messaging_product: 'whatsapp',
      status: 'read',
      message_id: 'wamid.IN',
      typing_indicator: { type: 'text' },
    });
    expect(markReadBody({ messageId: 'wamid.IN', typing: false })).toEqual({
      messaging_product: 'whatsapp',
      status: 'read',
      message_id: 'wamid.IN',
    });
  });

  it('addresses a business-scoped user id as recipient, a wa_id as to', () => {
    expect(recipientField('971500000001')).toEqual({ to: '971500000001' });
    expect(recipientField('+971500000001')).toEqual({ to: '+971500000001' });
    expect(recipientField('AE.1234567890123')).toEqual({ recipient: 'AE.1234567890123' });
    const body = textBody({ to: 'AE.1234567890123', body: 'Hi' });
    expect(body.recipient).toBe('AE.1234567890123');
    expect(body).not.toHaveProperty('to');
  });
});

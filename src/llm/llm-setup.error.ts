/** A start-up failure of the LLM module's files (prompt, canned messages); the message is one readable line. */
export class LlmSetupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LlmSetupError';
  }
}

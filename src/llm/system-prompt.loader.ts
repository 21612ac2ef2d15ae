import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Injectable } from '@nestjs/common';
import { AppConfig } from '../config/app-config';
import { LlmSetupError } from './llm-setup.error';
import { fillPlaceholders, placeholdersOf } from './placeholders';

export interface SystemPromptValues {
  clinicName: string;
  clinicPhone?: string;
  handoffMarker: string;
}

const KNOWN = ['clinicName', 'clinicPhone', 'handoffMarker'];

/**
 * Fills a prompt template. `<!-- … -->` comments are operator notes and are removed. Without a
 * clinic phone, every line that mentions {{clinicPhone}} is dropped rather than left dangling
 * ("call us on ."), so one file serves clinics with and without a number.
 */
export function renderSystemPrompt(template: string, values: SystemPromptValues): string {
  let text = template.replace(/<!--[\s\S]*?-->/g, '');
  const unknown = placeholdersOf(text).filter((name) => !KNOWN.includes(name));
  if (unknown.length > 0) {
    throw new Error(`unknown placeholder(s) ${unknown.map((n) => `{{${n}}}`).join(', ')}; known: ${KNOWN.join(', ')}`);
  }
  if (!values.clinicPhone) {
    text = text
      .split('\n')
      .filter((line) => !placeholdersOf(line).includes('clinicPhone'))
      .join('\n');
  }
  text = fillPlaceholders(text, { ...values });
  // Comments and dropped lines leave blank runs behind; the model does not need them.
  return text.replace(/\n{3,}/g, '\n\n').trim();
}

/**
 * The clinic's system prompt, read once at start-up from SYSTEM_PROMPT_FILE (relative to the
 * working directory) and filled from CLINIC_NAME, CLINIC_PHONE and LLM_HANDOFF_MARKER. A missing,
 * empty or broken file stops start-up: a bot without its instructions must not talk to patients.
 */
@Injectable()
export class SystemPromptLoader {
  readonly prompt: string;

  constructor(config: AppConfig) {
    const file = config.env.SYSTEM_PROMPT_FILE;
    const path = resolve(file);
    let template: string;
    try {
      template = readFileSync(path, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      throw new LlmSetupError(`SYSTEM_PROMPT_FILE: cannot read ${file} (${path}): ${code}`);
    }
    try {
      this.prompt = renderSystemPrompt(template, {
        clinicName: config.env.CLINIC_NAME,
        clinicPhone: config.env.CLINIC_PHONE,
        handoffMarker: config.env.LLM_HANDOFF_MARKER,
      });
    } catch (err) {
      throw new LlmSetupError(`SYSTEM_PROMPT_FILE: ${file}: ${(err as Error).message}`);
    }
    if (this.prompt === '') throw new LlmSetupError(`SYSTEM_PROMPT_FILE: ${file} is empty`);
  }
}

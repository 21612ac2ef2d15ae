import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppConfig } from '../config/app-config';
import { validateEnv } from '../config/validate-env';
import { testEnv } from '../../test/utils/test-env';
import { renderSystemPrompt, SystemPromptLoader } from './system-prompt.loader';

const configWith = (env: Record<string, string> = {}): AppConfig =>
  new AppConfig(validateEnv(testEnv({ CLINIC_NAME: 'Al Noor Clinic', ...env })));
const dir = mkdtempSync(join(tmpdir(), 'tawasul-prompt-'));
const writePrompt = (text: string): string => {
  const file = join(dir, `p${Math.random().toString(16).slice(2)}.md`);
  writeFileSync(file, text);
  return file;
};

describe('SystemPromptLoader with config/prompts/system.md', () => {
  it('fills clinic name, phone and handoff marker, and leaves no placeholder or comment', () => {
    const prompt = new SystemPromptLoader(
      configWith({ CLINIC_PHONE: '+971 4 123 4567', LLM_HANDOFF_MARKER: '<<HUMAN>>' }),
    ).prompt;
    expect(prompt).toContain('Al Noor Clinic');
    expect(prompt).toContain('+971 4 123 4567');
    expect(prompt).toContain('<<HUMAN>>');
    expect(prompt).not.toMatch(/\{\{|<!--|\[HANDOFF\]/);
  });

  it('covers what the receptionist must do', () => {
    const prompt = new SystemPromptLoader(configWith()).prompt;
    expect(prompt).toMatch(/Arabic/);
    expect(prompt).toMatch(/English/);
    expect(prompt).toMatch(/[Nn]ever diagnose/);
    expect(prompt).toMatch(/name/);
    expect(prompt).toMatch(/reason for (their|the) visit/);
    expect(prompt).toContain('[HANDOFF]');
    expect(prompt).toMatch(/WhatsApp/);
  });

  it('drops the lines about the phone when CLINIC_PHONE is unset', () => {
    const prompt = new SystemPromptLoader(configWith()).prompt;
    expect(prompt).not.toMatch(/can call the clinic on/);
    expect(prompt).not.toMatch(/\bon \.|\bon\s*$/m);
  });

  it('reads SYSTEM_PROMPT_FILE relative to the working directory, once', () => {
    const file = writePrompt('You work for {{clinicName}}.');
    const loader = new SystemPromptLoader(configWith({ SYSTEM_PROMPT_FILE: file }));
    writeFileSync(file, 'changed');
    expect(loader.prompt).toBe('You work for Al Noor Clinic.');
  });

  it('fails start-up clearly on a missing, empty or broken file', () => {
    const load = (file: string) => () => new SystemPromptLoader(configWith({ SYSTEM_PROMPT_FILE: file }));
    expect(load('config/prompts/missing.md')).toThrow(
      /^SYSTEM_PROMPT_FILE: cannot read config\/prompts\/missing\.md \(.*config\/prompts\/missing\.md\): ENOENT$/,
    );
    expect(load(writePrompt('<!-- only a comment -->\n'))).toThrow(/is empty/);
    expect(load(writePrompt('Hello {{clinicAddress}}'))).toThrow(/unknown placeholder\(s\) \{\{clinicAddress\}\}/);
  });
});

describe('renderSystemPrompt', () => {
  it('keeps phone lines when a phone is given and collapses blank runs', () => {
    const template =
      'A {{clinicName}}\n<!-- note {{anything}} -->\n\n\n\nCall {{ clinicPhone }}.\nMarker {{handoffMarker}}';
    expect(renderSystemPrompt(template, { clinicName: 'C', clinicPhone: '1', handoffMarker: 'M' })).toBe(
      'A C\n\nCall 1.\nMarker M',
    );
    expect(renderSystemPrompt(template, { clinicName: 'C', handoffMarker: 'M' })).toBe('A C\n\nMarker M');
  });
});

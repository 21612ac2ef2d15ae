import { Injectable } from '@nestjs/common';
import { AppConfig } from '../config/app-config';
import { type TurnTiming } from '../conversation/conversation.store';
import { ConversationStore } from '../conversation/conversation.store';
import { serviceWindow } from '../conversation/service-window';
import { chatLane } from '../queue/lanes';
import { RedisConnections } from '../redis/redis-connections.service';
import { waitReady } from '../redis/redis-client';
import { RedisKeys } from '../redis/redis-keys';
import { Clock } from '../time/clock';
import { DEMO_CLINIC_PATH, type DemoBooking, DemoClinic } from './demo-clinic.service';

/** The side panel lists this many of the demo clinic's bookings. */
const PANEL_BOOKINGS = 10;

/** What the page's side panel shows of one chat. */
export interface SandboxChatState {
  waId: string;
  window: { open: boolean; closesAt: string | null };
  handoff: { state: 'bot' | 'human'; since: string | null };
  language: string | null;
  name: string | null;
  /** Estimated spend on this chat's messages so far, USD. */
  costUsd: number;
  /** The last turns, newest first: when each committed and how long the patient waited. */
  turns: { at: string; ms: number; outcome: string }[];
  history: { role: string; text: string; at: string }[];
  /**
   * The sandbox's demo clinic, when it serves one (AppConfig.demoClinic): its API's path and its
   * upcoming bookings, the last booked or moved first. Every patient's: a booking names a patient,
   * not a chat.
   */
  clinic: { api: string; bookings: DemoBooking[] } | null;
}

const iso = (ms: number | undefined): string | null => (ms ? new Date(ms).toISOString() : null);

/** Reads and resumes chats of the deployment's own number for the page. */
@Injectable()
export class SandboxState {
  constructor(
    private readonly store: ConversationStore,
    private readonly connections: RedisConnections,
    private readonly keys: RedisKeys,
    private readonly clock: Clock,
    private readonly config: AppConfig,
    private readonly clinic: DemoClinic,
  ) {}

  async read(waId: string): Promise<SandboxChatState> {
    const lane = this.laneOf(waId);
    await this.ready();
    const redis = this.connections.ingest;
    const [chat, micros, timings, bookings] = await Promise.all([
      this.store.readChat(lane),
      redis.get(this.keys.chatCost(lane)),
      redis.lrange(this.keys.chatTurns(lane), 0, -1),
      this.config.demoClinic ? this.clinic.latest(PANEL_BOOKINGS) : undefined,
    ]);
    const { state, history, handoff } = chat;
    const window = serviceWindow(state.lastInboundTs, this.clock.now());
    return {
      waId,
      window: { open: window.open, closesAt: iso(window.closesAt) },
      handoff: { state: handoff.state, since: handoff.state === 'human' ? iso(handoff.since) : null },
      language: state.language ?? null,
      name: state.name ?? null,
      costUsd: Math.round(Number(micros) || 0) / 1e6,
      turns: timings.map((raw) => {
        const t = JSON.parse(raw) as TurnTiming;
        return { at: new Date(t.at).toISOString(), ms: t.ms, outcome: t.outcome };
      }),
      history: history.map((entry) => ({ role: entry.role, text: entry.text, at: new Date(entry.at).toISOString() })),
      clinic: bookings ? { api: DEMO_CLINIC_PATH, bookings } : null,
    };
  }

  /** Hands the chat back to the bot (the "resolve" a human would do in Chatwoot). */
  async resume(waId: string): Promise<boolean> {
    await this.ready();
    return this.store.resume(this.laneOf(waId));
  }

  private laneOf(waId: string): string {
    return chatLane(this.config.phoneNumberId, waId);
  }

  /** The ingest connection has no offline queue: the first request after start-up waits for it. */
  private async ready(): Promise<void> {
    const client = this.connections.ingest;
    if (client.status !== 'ready') await waitReady(client, this.config.env.INGEST_TIMEOUT_MS);
  }
}

import { createHash, randomBytes } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { type Logger } from 'pino';
import { ApiError } from '../api/api-error';
import { AppConfig } from '../config/app-config';
import { AppLogger } from '../logging/app-logger';
import { RedisConnections } from '../redis/redis-connections.service';
import { type RedisClient, waitReady } from '../redis/redis-client';
import { RedisKeys } from '../redis/redis-keys';
import { Clock } from '../time/clock';
import {
  type ClinicNow,
  clinicNow,
  type DemoSlot,
  dayMs,
  isPast,
  nextOpenDate,
  slotOf,
  slotsOf,
} from './demo-clinic.calendar';
import { type BookDto, type RescheduleDto } from './demo-clinic.dto';
import { DEMO_BOOK_SCRIPT, DEMO_CANCEL_SCRIPT, DEMO_RESCHEDULE_SCRIPT } from './demo-clinic.scripts';

/** Where the page and the docs say the demo clinic is; ClinicActions reaches it on its own port. */
export const DEMO_CLINIC_PATH = '/sandbox/clinic';
/** A demo left alone disappears: every key expires a week after its last write. */
export const DEMO_CLINIC_TTL_S = 7 * 24 * 3600;
/** A bound on what a runaway script can book between two expiries: about 60 working days of slots. */
export const MAX_DEMO_BOOKINGS = 1000;
/** Crockford's base 32: no I, L, O or U to misread when a patient reads an id back. */
const ID_ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
/** A write that lost a race (a new id in use, a booking changed meanwhile) is tried this often. */
const WRITE_ATTEMPTS = 5;

/** What the API shows of a booking (the contract the offline receptionist reads). */
export interface DemoBooking {
  bookingId: string;
  slotId: string;
  date: string;
  time: string;
  doctor: string;
  patientName: string;
  reason: string | null;
}

/** As stored: when it was last booked or moved orders the side panel's list. */
interface StoredBooking extends DemoBooking {
  changedAt: number;
}

/** One answer of the API: the status and body to send, and whether an earlier request's. */
export interface ClinicAnswer {
  status: number;
  body: Record<string, unknown>;
  replayed?: boolean;
}

export interface FreeSlots {
  date: string;
  open: boolean;
  slots: DemoSlot[];
  /** With `open: false` or no free slot: the next day the clinic works. */
  nextOpenDate?: string;
}

type ScriptName = 'tawasulDemoBook' | 'tawasulDemoReschedule' | 'tawasulDemoCancel';
type ScriptCommand = (...keysAndArgs: (string | number)[]) => Promise<[number, string]>;
type ScriptClient = RedisClient & Partial<Record<ScriptName, ScriptCommand>>;

/**
 * The demo clinic's booking system, in Redis on the sandbox's ingest connection: a computed
 * calendar (demo-clinic.calendar.ts), the taken slots, the bookings, and the first answer to each
 * Idempotency-Key. Patient names are data it returns, never something it logs.
 */
@Injectable()
export class DemoClinic {
  private readonly logger: Logger;

  constructor(
    private readonly connections: RedisConnections,
    private readonly keys: RedisKeys,
    private readonly clock: Clock,
    private readonly config: AppConfig,
    appLogger: AppLogger,
  ) {
    this.logger = appLogger.child('demo-clinic');
  }

  async slots(date: string, doctor?: string): Promise<FreeSlots> {
    if (dayMs(date) === undefined) {
      throw ApiError.invalid('invalid_query', [{ field: 'date', problem: 'is not a calendar day' }]);
    }
    const now = this.now();
    const calendar = slotsOf(date);
    if (calendar.length === 0 || date < now.date) {
      return { date, open: false, slots: [], nextOpenDate: nextOpenDate(date, now) };
    }
    const wanted = doctor?.toLowerCase();
    const candidates = calendar.filter(
      (slot) => !isPast(slot, now) && (!wanted || slot.doctor.toLowerCase().includes(wanted)),
    );
    const taken =
      candidates.length === 0
        ? []
        : await this.redis((r) => r.hmget(this.keys.demoClinic('slots'), ...candidates.map((slot) => slot.id)));
    const slots = candidates.filter((_, i) => taken[i] === null);
    // Open but nothing free (all taken, over for today, no such doctor): say where to look next.
    return slots.length > 0
      ? { date, open: true, slots }
      : { date, open: true, slots, nextOpenDate: nextOpenDate(date, now) };
  }

  async book(dto: BookDto, idempotencyKey: string | undefined): Promise<ClinicAnswer> {
    const idem = this.idempotencyOf(idempotencyKey);
    const replay = await this.replay(idem);
    if (replay) return replay;
    const slot = this.bookable(dto.slotId);
    const taken = answer(409, { error: 'slot_taken', message: `${slot.id} is already booked; pick another free slot` });
    const full = answer(409, { error: 'calendar_full', message: 'the demo calendar is full; cancel a booking first' });
    for (let attempt = 0; attempt < WRITE_ATTEMPTS; attempt++) {
      const booking: StoredBooking = {
        bookingId: newBookingId(),
        ...slotFields(slot),
        patientName: dto.patientName,
        reason: dto.reason || null,
        changedAt: this.clock.now(),
      };
      const [outcome, stored] = await this.run('tawasulDemoBook', DEMO_BOOK_SCRIPT, idem, [
        slot.id,
        booking.bookingId,
        JSON.stringify(booking),
        MAX_DEMO_BOOKINGS,
        answer(201, shown(booking)),
        taken,
        full,
      ]);
      if (outcome !== 2) return this.answered('book', outcome, stored);
    }
    return this.busy();
  }

  async reschedule(bookingId: string, dto: RescheduleDto, idempotencyKey: string | undefined): Promise<ClinicAnswer> {
    const idem = this.idempotencyOf(idempotencyKey);
    const replay = await this.replay(idem);
    if (replay) return replay;
    const id = normalId(bookingId);
    const slot = this.bookable(dto.slotId);
    const taken = answer(409, { error: 'slot_taken', message: `${slot.id} is already booked; pick another free slot` });
    for (let attempt = 0; attempt < WRITE_ATTEMPTS; attempt++) {
      const raw = await this.redis((r) => r.hget(this.keys.demoClinic('bookings'), id));
      const current = raw ? (JSON.parse(raw) as StoredBooking) : undefined;
      const moved = current && { ...current, ...slotFields(slot), changedAt: this.clock.now() };
      const [outcome, stored] = await this.run('tawasulDemoReschedule', DEMO_RESCHEDULE_SCRIPT, idem, [
        id,
        raw ?? '',
        current?.slotId ?? '',
        slot.id,
        moved ? JSON.stringify(moved) : '',
        moved ? answer(200, shown(moved)) : '',
        notFound(id),
        taken,
      ]);
      if (outcome !== 2) return this.answered('reschedule', outcome, stored);
    }
    return this.busy();
  }

  async cancel(bookingId: string, idempotencyKey: string | undefined): Promise<ClinicAnswer> {
    const idem = this.idempotencyOf(idempotencyKey);
    const replay = await this.replay(idem);
    if (replay) return replay;
    const id = normalId(bookingId);
    for (let attempt = 0; attempt < WRITE_ATTEMPTS; attempt++) {
      const raw = await this.redis((r) => r.hget(this.keys.demoClinic('bookings'), id));
      const current = raw ? (JSON.parse(raw) as StoredBooking) : undefined;
      const [outcome, stored] = await this.run('tawasulDemoCancel', DEMO_CANCEL_SCRIPT, idem, [
        id,
        raw ?? '',
        current?.slotId ?? '',
        answer(200, { bookingId: id, cancelled: true }),
        notFound(id),
      ]);
      if (outcome !== 2) return this.answered('cancel', outcome, stored);
    }
    return this.busy();
  }

  /** A patient's upcoming bookings, soonest first; the name matches ignoring case and spacing. */
  async appointments(patientName: string): Promise<DemoBooking[]> {
    const wanted = nameKey(patientName);
    const upcoming = await this.upcomingBookings();
    return upcoming
      .filter((b) => nameKey(b.patientName) === wanted)
      .sort((a, b) => (a.slotId < b.slotId ? -1 : a.slotId > b.slotId ? 1 : 0))
      .map(shown);
  }

  /** The clinic's upcoming bookings, the last booked or moved first: what the side panel shows. */
  async latest(limit: number): Promise<DemoBooking[]> {
    const upcoming = await this.upcomingBookings();
    return upcoming
      .sort((a, b) => b.changedAt - a.changedAt)
      .slice(0, limit)
      .map(shown);
  }

  private async upcomingBookings(): Promise<StoredBooking[]> {
    const raws = await this.redis((r) => r.hvals(this.keys.demoClinic('bookings')));
    const now = this.now();
    return raws.map((raw) => JSON.parse(raw) as StoredBooking).filter((b) => !isPast(b, now));
  }

  /** A slot that exists and has not started yet, or the 404/400 that says why not. */
  private bookable(slotId: string): DemoSlot {
    const slot = slotOf(slotId);
    if (!slot) {
      throw new ApiError(404, {
        error: 'slot_not_found',
        message: 'no such slot: use an id from GET /slots (Monday to Friday, 09:00 to 16:30)',
      });
    }
    if (isPast(slot, this.now())) {
      throw new ApiError(400, { error: 'slot_in_past', message: `${slot.id} has already started; pick a later slot` });
    }
    return slot;
  }

  private idempotencyOf(key: string | undefined): string | undefined {
    if (key === undefined) return undefined;
    if (key.length < 1 || key.length > 255) {
      throw ApiError.invalid('invalid_body', [{ field: 'Idempotency-Key', problem: 'must be 1 to 255 characters' }]);
    }
    return this.keys.demoClinic(`idem:${createHash('sha256').update(key, 'utf8').digest('hex')}`);
  }

  /**
   * A key already answered gets that answer before anything else is checked: a retry must see the
   * booking it made even once its slot has started.
   */
  private async replay(idem: string | undefined): Promise<ClinicAnswer | undefined> {
    if (!idem) return undefined;
    const prior = await this.redis((r) => r.get(idem));
    return prior ? { ...(JSON.parse(prior) as ClinicAnswer), replayed: true } : undefined;
  }

  private async run(
    command: ScriptName,
    lua: string,
    idem: string | undefined,
    args: (string | number)[],
  ): Promise<[number, string]> {
    return this.redis((client) => {
      const r = client as ScriptClient;
      if (!r[command]) r.defineCommand(command, { numberOfKeys: 3, lua });
      // Without an Idempotency-Key, KEYS[1] still needs a key of the same hash tag (Cluster); the
      // script never touches it.
      return r[command]!(
        idem ?? this.keys.demoClinic('idem:none'),
        this.keys.demoClinic('slots'),
        this.keys.demoClinic('bookings'),
        idem ? '1' : '0',
        DEMO_CLINIC_TTL_S,
        ...args,
      );
    });
  }

  private answered(operation: string, outcome: number, stored: string): ClinicAnswer {
    const given = JSON.parse(stored) as ClinicAnswer;
    this.logger.debug({ operation, status: given.status, replayed: outcome === 0 }, 'demo clinic');
    return outcome === 0 ? { ...given, replayed: true } : given;
  }

  private busy(): never {
    throw new ApiError(503, { error: 'unavailable', message: 'the demo clinic is busy; retry' });
  }

  private now(): ClinicNow {
    return clinicNow(this.clock.now());
  }

  /** Redis work on the sandbox's ingest connection; Redis failing is a 503, never a 500. */
  private async redis<T>(work: (client: RedisClient) => Promise<T>): Promise<T> {
    const client = this.connections.ingest;
    try {
      if (client.status !== 'ready') await waitReady(client, this.config.env.INGEST_TIMEOUT_MS);
      return await work(client);
    } catch (err) {
      this.logger.error({ err }, 'redis did not answer; 503');
      throw new ApiError(503, { error: 'unavailable', message: 'storage unavailable; retry' });
    }
  }
}

function answer(status: number, body: object): string {
  return JSON.stringify({ status, body });
}

function notFound(id: string): string {
  return answer(404, { error: 'booking_not_found', message: `no booking ${id}` });
}

function slotFields(slot: DemoSlot): Pick<DemoBooking, 'slotId' | 'date' | 'time' | 'doctor'> {
  return { slotId: slot.id, date: slot.date, time: slot.time, doctor: slot.doctor };
}

/** A booking as the API answers it (docs/actions.md): its fields in that order, without `changedAt`. */
function shown(b: DemoBooking): DemoBooking {
  return {
    bookingId: b.bookingId,
    slotId: b.slotId,
    date: b.date,
    time: b.time,
    doctor: b.doctor,
    patientName: b.patientName,
    reason: b.reason,
  };
}

/** `B-` and six base-32 characters: short enough to read out, a billion of them. */
export function newBookingId(): string {
  return `B-${Array.from(randomBytes(6), (byte) => ID_ALPHABET[byte & 31]).join('')}`;
}

/** Ids typed back by a patient or an LLM may come in lower case. */
function normalId(id: string): string {
  return id.trim().toUpperCase();
}

function nameKey(name: string): string {
  return name.normalize('NFC').trim().replace(/\s+/g, ' ').toLowerCase();
}

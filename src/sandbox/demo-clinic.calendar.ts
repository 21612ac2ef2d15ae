import { CLINIC_UTC_OFFSET_MS } from '../time/clinic-time';

/**
 * The sandbox demo clinic's calendar (docs/actions.md, "The sandbox's demo clinic"): Monday to
 * Friday, 09:00–17:00 in 30-minute slots. Each slot has one doctor, alternating, so a slot's id is
 * its day and time (`2026-12-01T09:00`) and stays unique. Computed, never stored: only bookings
 * live in Redis.
 */

export const DOCTORS = ['Dr. Sara Haddad', 'Dr. Omar Khalil'] as const;
const OPENS_AT_MINUTE = 9 * 60;
const CLOSES_AT_MINUTE = 17 * 60;
const SLOT_MINUTES = 30;
const DAY_MS = 24 * 3600_000;
const DAY = /^(\d{4})-(\d{2})-(\d{2})$/;
const SLOT_ID = /^(\d{4}-\d{2}-\d{2})T(\d{2}):(\d{2})$/;

export interface DemoSlot {
  /** `<date>T<HH:MM>`: sorts like the time it names. */
  id: string;
  date: string;
  time: string;
  doctor: string;
}

/** Where the clinic's clock is: its day (YYYY-MM-DD) and the minute of that day. */
export interface ClinicNow {
  date: string;
  minute: number;
}

export function clinicNow(nowMs: number): ClinicNow {
  const local = new Date(nowMs + CLINIC_UTC_OFFSET_MS);
  return { date: local.toISOString().slice(0, 10), minute: local.getUTCHours() * 60 + local.getUTCMinutes() };
}

/** Midnight UTC of a YYYY-MM-DD day, or undefined when it is not a calendar day (2026-02-30). */
export function dayMs(date: string): number | undefined {
  const m = DAY.exec(date);
  if (!m) return undefined;
  const ms = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  return new Date(ms).toISOString().slice(0, 10) === date ? ms : undefined;
}

const dateOf = (ms: number): string => new Date(ms).toISOString().slice(0, 10);
const hhmm = (minute: number): string =>
  `${String(Math.floor(minute / 60)).padStart(2, '0')}:${String(minute % 60).padStart(2, '0')}`;

/** The UAE weekend is Saturday and Sunday. */
export function isWorkingDay(date: string): boolean {
  const ms = dayMs(date);
  if (ms === undefined) return false;
  const weekday = new Date(ms).getUTCDay();
  return weekday !== 0 && weekday !== 6;
}

/** Every slot of a day, free or not, in time order; none on a weekend. */
export function slotsOf(date: string): DemoSlot[] {
  if (!isWorkingDay(date)) return [];
  const slots: DemoSlot[] = [];
  for (let minute = OPENS_AT_MINUTE, i = 0; minute < CLOSES_AT_MINUTE; minute += SLOT_MINUTES, i++) {
    const time = hhmm(minute);
    slots.push({ id: `${date}T${time}`, date, time, doctor: DOCTORS[i % DOCTORS.length] });
  }
  return slots;
}

/** The slot a slot id names, or undefined when the calendar has no such slot. */
export function slotOf(id: string): DemoSlot | undefined {
  const m = SLOT_ID.exec(id);
  if (!m) return undefined;
  return slotsOf(m[1]).find((slot) => slot.id === id);
}

/** A slot that has started can no longer be booked. */
export function isPast(slot: Pick<DemoSlot, 'date' | 'time'>, now: ClinicNow): boolean {
  if (slot.date !== now.date) return slot.date < now.date;
  const [h, m] = slot.time.split(':').map(Number);
  return h * 60 + m <= now.minute;
}

/**
 * The next day after `date` the clinic still works, and never a day already over: from today on
 * for a date in the past, today itself only while it has a slot ahead.
 */
export function nextOpenDate(date: string, now: ClinicNow): string {
  let ms = Math.max(dayMs(date)! + DAY_MS, dayMs(now.date)!);
  for (;;) {
    const day = dateOf(ms);
    if (slotsOf(day).some((slot) => !isPast(slot, now))) return day;
    ms += DAY_MS;
  }
}

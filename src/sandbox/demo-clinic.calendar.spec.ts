import { clinicNow, dayMs, DOCTORS, isPast, isWorkingDay, nextOpenDate, slotOf, slotsOf } from './demo-clinic.calendar';
import { newBookingId } from './demo-clinic.service';

// Tuesday 1 December 2026, 10:15 in Dubai (06:15 UTC).
const TUESDAY_1015 = Date.UTC(2026, 11, 1, 6, 15);

describe('the demo clinic calendar', () => {
  it('reads the clinic clock in UAE time (UTC+4), across midnight too', () => {
    expect(clinicNow(TUESDAY_1015)).toEqual({ date: '2026-12-01', minute: 10 * 60 + 15 });
    expect(clinicNow(Date.UTC(2026, 11, 1, 21, 30))).toEqual({ date: '2026-12-02', minute: 90 });
  });

  it('takes calendar days only', () => {
    expect(dayMs('2026-12-01')).toBe(Date.UTC(2026, 11, 1));
    for (const bad of ['2026-02-30', '2026-13-01', '2026-1-01', '01-12-2026', 'tomorrow', '2026-12-01T09:00']) {
      expect({ bad, ms: dayMs(bad) }).toEqual({ bad, ms: undefined });
    }
  });

  it('works Monday to Friday: Saturday and Sunday are the weekend', () => {
    const week = ['2026-11-30', '2026-12-01', '2026-12-02', '2026-12-03', '2026-12-04', '2026-12-05', '2026-12-06'];
    expect(week.map(isWorkingDay)).toEqual([true, true, true, true, true, false, false]);
    expect(slotsOf('2026-12-05')).toEqual([]);
  });

  it('has 16 half-hour slots from 09:00 to 16:30, one doctor each, alternating, ids unique', () => {
    const slots = slotsOf('2026-12-01');
    expect(slots).toHaveLength(16);
    expect(slots[0]).toEqual({ id: '2026-12-01T09:00', date: '2026-12-01', time: '09:00', doctor: DOCTORS[0] });
    expect(slots[1]).toEqual({ id: '2026-12-01T09:30', date: '2026-12-01', time: '09:30', doctor: DOCTORS[1] });
    expect(slots.at(-1)!.time).toBe('16:30');
    expect(new Set(slots.map((s) => s.id)).size).toBe(16);
    expect([...slots.map((s) => s.id)].sort()).toEqual(slots.map((s) => s.id));
  });

  it('knows a slot by its id, and no slot outside the calendar', () => {
    expect(slotOf('2026-12-01T16:30')).toMatchObject({ time: '16:30', doctor: DOCTORS[1] });
    for (const id of ['2026-12-01T17:00', '2026-12-01T08:30', '2026-12-01T09:15', '2026-12-05T09:00', 'slot-1', '']) {
      expect({ id, slot: slotOf(id) }).toEqual({ id, slot: undefined });
    }
  });

  it('a slot that has started is past; a later one, or one on a later day, is not', () => {
    const now = clinicNow(TUESDAY_1015);
    expect(isPast({ date: '2026-12-01', time: '10:00' }, now)).toBe(true);
    expect(isPast({ date: '2026-12-01', time: '10:15' }, now)).toBe(true);
    expect(isPast({ date: '2026-12-01', time: '10:30' }, now)).toBe(false);
    expect(isPast({ date: '2026-11-30', time: '16:30' }, now)).toBe(true);
    expect(isPast({ date: '2026-12-02', time: '09:00' }, now)).toBe(false);
  });

  it('the next open day skips weekends, past days, and today once it is over', () => {
    const tuesday = clinicNow(TUESDAY_1015);
    expect(nextOpenDate('2026-12-05', tuesday)).toBe('2026-12-07');
    expect(nextOpenDate('2026-12-04', tuesday)).toBe('2026-12-07');
    expect(nextOpenDate('2026-11-02', tuesday)).toBe('2026-12-01');
    const tuesdayEvening = clinicNow(Date.UTC(2026, 11, 1, 14, 0));
    expect(nextOpenDate('2026-11-02', tuesdayEvening)).toBe('2026-12-02');
    const fridayEvening = clinicNow(Date.UTC(2026, 11, 4, 14, 0));
    expect(nextOpenDate('2026-12-04', fridayEvening)).toBe('2026-12-07');
  });

  it('booking ids are B- and six base-32 characters', () => {
    const ids = Array.from({ length: 200 }, newBookingId);
    for (const id of ids) expect(id).toMatch(/^B-[0-9A-HJKMNP-TV-Z]{6}$/);
    expect(new Set(ids).size).toBe(200);
  });
});

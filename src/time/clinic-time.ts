/** The clinic keeps UAE time: Gulf Standard Time, UTC+4 all year (no daylight saving). */
export const CLINIC_UTC_OFFSET_MS = 4 * 3600_000;

// One time zone for every time the terminal shows (chart, positions, orders, history, export):
// the browser's own, or UTC when the trader switches to it.
import type { TimeZoneChoice } from "./settings";

let choice: TimeZoneChoice = "local";
let formatters = build(choice);

function build(c: TimeZoneChoice): { full: Intl.DateTimeFormat; day: Intl.DateTimeFormat; clock: Intl.DateTimeFormat } {
  const timeZone = c === "utc" ? "UTC" : undefined;
  const base = { timeZone, hourCycle: "h23" as const };
  return {
    full: new Intl.DateTimeFormat("en-CA", {
      ...base, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
    }),
    day: new Intl.DateTimeFormat("en-GB", { ...base, day: "2-digit", month: "short" }),
    clock: new Intl.DateTimeFormat("en-GB", { ...base, hour: "2-digit", minute: "2-digit" }),
  };
}

export function setTimeZone(c: TimeZoneChoice): void {
  choice = c;
  formatters = build(c);
}

export function timeZoneChoice(): TimeZoneChoice {
  return choice;
}

/** The browser's IANA zone name, e.g. "Europe/Berlin". */
export function browserZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "local";
}

/** Offset of the chosen zone from UTC at `ms`, in minutes (east positive). */
export function offsetMinutes(ms: number): number {
  return choice === "utc" ? 0 : -new Date(ms).getTimezoneOffset();
}

/** What the header shows: "UTC" or "UTC+05:45 Asia/Kathmandu". */
export function zoneLabel(now = Date.now()): string {
  if (choice === "utc") return "UTC";
  const off = offsetMinutes(now);
  const sign = off < 0 ? "−" : "+";
  const abs = Math.abs(off);
  const hh = String(Math.floor(abs / 60)).padStart(2, "0");
  const mm = String(abs % 60).padStart(2, "0");
  return `UTC${sign}${hh}:${mm} ${browserZone()}`;
}

/** "2026-12-01 00:12:54" in the chosen zone; "—" for no time. */
export function fmtTime(ms: number | null): string {
  if (ms === null) return "—";
  const parts = Object.fromEntries(formatters.full.formatToParts(new Date(ms)).map((p) => [p.type, p.value]));
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second}`;
}

/** Axis label for a chart tick: the day for day marks, else hours and minutes. */
export function fmtTick(ms: number, dayMark: boolean): string {
  return (dayMark ? formatters.day : formatters.clock).format(new Date(ms));
}

/** Start of the chosen zone's calendar day containing `ms`, as epoch ms. */
export function startOfDay(ms: number): number {
  const off = offsetMinutes(ms) * 60_000;
  return Math.floor((ms + off) / 86_400_000) * 86_400_000 - off;
}

/** Start of the calendar day "YYYY-MM-DD" in the chosen zone, as epoch ms; null if malformed. */
export function dayStartMs(date: string): number | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date.trim());
  if (!m) return null;
  const utcMidnight = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  if (Number.isNaN(utcMidnight)) return null;
  // The zone's offset at that moment (a day that starts a DST change is off by its shift).
  return utcMidnight - offsetMinutes(utcMidnight) * 60_000;
}

/** "YYYY-MM-DD" of the day containing `ms` in the chosen zone (a date input's value). */
export function dayOf(ms: number): string {
  return fmtTime(ms).slice(0, 10);
}

// The trader's display and trading preferences, kept in localStorage (they are not secrets and
// should survive a new tab): the time zone every time is shown in, and one-click trading.
const STORAGE_KEY = "exness.settings";

export type TimeZoneChoice = "local" | "utc";

export interface Settings {
  timeZone: TimeZoneChoice;
  /** Off by default: the ticket then asks to confirm side, volume and price. */
  oneClick: boolean;
}

const DEFAULTS: Settings = { timeZone: "local", oneClick: false };

type Listener = (s: Settings) => void;

export class SettingsStore {
  private value: Settings;
  private listeners: Listener[] = [];

  constructor() {
    this.value = { ...DEFAULTS };
    try {
      const raw = localStorage.getItem(STORAGE_KEY);
      if (raw) {
        const saved = JSON.parse(raw) as Partial<Settings>;
        if (saved.timeZone === "utc" || saved.timeZone === "local") this.value.timeZone = saved.timeZone;
        if (typeof saved.oneClick === "boolean") this.value.oneClick = saved.oneClick;
      }
    } catch {
      // Unreadable settings: the defaults are safe.
    }
  }

  get current(): Settings {
    return this.value;
  }

  update(patch: Partial<Settings>): void {
    this.value = { ...this.value, ...patch };
    try {
      localStorage.setItem(STORAGE_KEY, JSON.stringify(this.value));
    } catch {
      // Private mode: the setting lasts as long as the page.
    }
    for (const fn of this.listeners) fn(this.value);
  }

  onChange(fn: Listener): void {
    this.listeners.push(fn);
  }
}

// What every panel gets: the API clients, the shared state and a way to tell the trader things.
import type { Clients } from "../api/clients";
import type { Session } from "../session";
import type { SettingsStore } from "../settings";
import type { Store } from "../store";

export interface Ctx {
  clients: Clients;
  store: Store;
  session: Session;
  settings: SettingsStore;
  notify: (text: string, kind?: "info" | "success" | "error" | "warning") => void;
}

// The few protocol types the dashboard reads, written by hand from
// docs/protocol.schema.json (AgentSummary, StatusRow, ContainerHealth,
// LogChunk, Reply). Field names are the schema's.

export type Labels = Record<string, string>;

export interface AgentSummary {
  name: string;
  labels: Labels;
  online: boolean;
  last_seen?: string | null;
  version?: string | null;
  hostname?: string | null;
}

export interface ContainerHealth {
  id: string;
  name: string;
  image: string;
  state: string;
  health?: string | null;
  restarts: number;
  started_at?: string | null;
  cpu_percent?: number | null;
  mem_usage?: number;
  mem_limit?: number;
}

export interface StatusRow {
  server: string;
  labels: Labels;
  online: boolean;
  last_seen?: string | null;
  docker_available?: boolean | null;
  docker_error?: string | null;
  containers: ContainerHealth[];
}

export interface LogChunk {
  stream?: "stdout" | "stderr" | null;
  text?: string | null;
  b64?: string | null;
}

export interface ErrorBody {
  code: string;
  message: string;
}

export type ReplyType =
  | "result"
  | "log"
  | "health"
  | "event"
  | "progress"
  | "stats"
  | "error"
  | "end";

export interface Reply {
  id: number | null;
  type: ReplyType;
  server?: string;
  data: unknown;
}

export interface Session {
  id: string;
  name: string;
  role: string;
}

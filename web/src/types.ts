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
  net_rx?: number;
  net_tx?: number;
}

export interface StatusRow {
  server: string;
  labels: Labels;
  online: boolean;
  last_seen?: string | null;
  docker_available?: boolean | null;
  docker_error?: string | null;
  snapshot_at?: string | null;
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

// Events, deploys and admin pages (Event, DeployProgress, ContainerOutcome,
// DeployOutcome, FleetOutcome, DeployEntry, ApiTokenInfo, JoinTokenInfo,
// AuditRow in the schema).

export interface FleetEvent {
  kind: "container" | "agent";
  action: string;
  time_ms: number;
  container_id?: string | null;
  container?: string | null;
  image?: string | null;
  exit_code?: number | null;
  health?: string | null;
  signal?: string | null;
}

export interface DeployProgress {
  deploy_id: string;
  container: string;
  step: string;
  status: string;
  at_ms: number;
  detail?: string | null;
  error?: string | null;
}

export interface ContainerOutcome {
  container: string;
  from_image: string;
  to_image: string;
  outcome: string;
  failed_step?: string | null;
  error?: string | null;
  logs_tail?: string | null;
  rollback_via?: string | null;
}

export interface DeployOutcome {
  deploy_id: string;
  server?: string | null;
  kind?: string | null;
  image?: string | null;
  outcome: string;
  containers: ContainerOutcome[];
  error?: string | null;
  started_ms?: number | null;
  finished_ms?: number | null;
  steps?: DeployProgress[];
}

export interface FleetOutcome {
  updated: string[];
  failed: string[];
  untouched: string[];
  skipped: string[];
  canaries: string[];
  deploys: DeployOutcome[];
}

export interface DeployEntry {
  id: string;
  actor: string;
  server: string;
  container?: string | null;
  image: string;
  status: string;
  created_at: string;
  finished_at?: string | null;
  outcome?: DeployOutcome | null;
  progress?: DeployProgress[] | null;
}

export interface ApiTokenInfo {
  id: string;
  name: string;
  role: string;
  created_at: string;
  expires_at?: string | null;
  revoked_at?: string | null;
}

export interface JoinTokenInfo {
  id: string;
  name: string;
  labels: Labels;
  created_at: string;
  expires_at: string;
  used: boolean;
  expired: boolean;
  created_by: string;
}

export interface AuditRow {
  id: number;
  time: string;
  actor: string;
  actor_token?: string | null;
  action: string;
  target: string;
  detail: string;
}

// Read by the container and agent pages (HistoryPoint, History, HostInfo).

export interface HistoryPoint {
  t_s: number;
  samples: number;
  cpu_avg?: number | null;
  cpu_max?: number | null;
  mem_avg: number;
  mem_max: number;
  mem_limit: number;
  net_rx: number;
  net_tx: number;
  restarts: number;
  state: string;
  health?: string | null;
}

export interface History {
  server: string;
  container: string;
  resolution_s: number;
  points: HistoryPoint[];
}

export interface HostInfo {
  hostname: string;
  os: string;
  kernel: string;
  arch: string;
  cpus: number;
  memory_total_bytes: number;
  memory_available_bytes: number;
  agent_version: string;
  agent_uptime_s: number;
  host_uptime_s: number;
  docker: { available: boolean; version?: string | null; api_version?: string | null; error?: string | null };
}

// The protocol types the dashboard reads. They are generated from
// docs/protocol.schema.json into protocol.gen.ts (`npm run types`, run by
// scripts/check-web.sh, which fails when the committed file is stale), so
// a field the hub renames or drops breaks the dashboard's build, not its
// pages. Only what is not in the schema is written here.

export type {
  AgentPolicy,
  AlertChannelInfo,
  AlertInfo,
  AlertRuleInfo,
  AgentSummary,
  ApiTokenInfo,
  AuditRow,
  ContainerHealth,
  ContainerOutcome,
  DeployEntry,
  DeployOutcome,
  DeployProgress,
  ErrorBody,
  ExecSession,
  SilenceInfo,
  FleetOutcome,
  HistoryPoint,
  JoinTokenInfo,
  LogChunk,
  Reply,
  StatusRow,
} from "./protocol.gen";
import type { AgentInfo, Event, HistoryAnswer, Reply } from "./protocol.gen";

/** Labels as the schema has them inline: name -> value. */
export type Labels = Record<string, string>;

/** An `event` reply's data (`Event` in the schema). */
export type FleetEvent = Event;

/** `history`'s answer. */
export type History = HistoryAnswer;

/** `info`'s answer: the agent's host. */
export type HostInfo = AgentInfo;

/** What a reply is (`Reply.type`). */
export type ReplyType = Reply["type"];

/** `GET /api/session` (an HTTP answer, not a WebSocket message). */
export interface Session {
  id: string;
  name: string;
  role: string;
}

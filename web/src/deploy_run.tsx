// Running a `deploy` and showing it as it goes: each step as it arrives,
// then the outcome (rolled back or not, the failed step, the error and the
// log tail); for a selector also the servers updated, failed (rolled back)
// and untouched so far. Shared by "New deploy" and the container page.

import { useState } from "preact/hooks";
import type { Api } from "./api";
import { deployHref } from "./deploys";
import { Link } from "./link";
import { Outcome, Steps } from "./outcome";
import type { DeployOutcome, DeployProgress, ErrorBody, FleetOutcome } from "./types";

/** Steps kept in the live view (a deploy has a few dozen per server). */
const MAX_STEPS = 1000;

export interface Run {
  steps: DeployProgress[];
  finished: Record<string, string>;
  deployId?: string;
  outcome?: DeployOutcome;
  fleet?: FleetOutcome;
  error?: string;
  done: boolean;
}

export type DeployTarget = { server: string } | { selector: string };

function counts(run: Run) {
  if (run.fleet) {
    return { updated: run.fleet.updated.length, failed: run.fleet.failed.length, untouched: run.fleet.untouched.length };
  }
  const by = Object.values(run.finished);
  return {
    updated: by.filter((s) => s === "succeeded").length,
    failed: by.filter((s) => s === "rolled_back" || s === "failed" || s === "unknown").length,
    untouched: by.filter((s) => s === "untouched").length,
  };
}

/** The run in progress (null before the first) and how to start one. */
export function useDeployRun(api: Api) {
  const [run, setRun] = useState<Run | null>(null);
  const start = async (target: DeployTarget, payload: Record<string, unknown>) => {
    const fleet = "selector" in target;
    let r: Run = { steps: [], finished: {}, done: false };
    setRun(r);
    const update = (f: (r: Run) => Run) => {
      r = f(r);
      setRun(r);
    };
    try {
      await api.send("deploy", target, payload, (reply) => {
        if (reply.type === "progress") {
          const p = reply.data as DeployProgress;
          const step = reply.server && fleet ? { ...p, container: `${reply.server} ${p.container}`.trim() } : p;
          update((r) => ({
            ...r,
            deployId: r.deployId ?? (fleet ? undefined : p.deploy_id),
            steps: p.step === "pull_progress" ? r.steps : [...r.steps, step].slice(-MAX_STEPS),
            finished: p.step === "finished" && reply.server ? { ...r.finished, [reply.server]: p.status } : r.finished,
          }));
        } else if (reply.type === "result") {
          const fleet = reply.data as FleetOutcome;
          const one = reply.data as DeployOutcome;
          update((r) => (Array.isArray(fleet.deploys) ? { ...r, fleet, done: true } : { ...r, outcome: one, done: true }));
        } else if (reply.type === "error") {
          update((r) => ({ ...r, error: (reply.data as ErrorBody).message, done: true }));
        }
      });
    } catch (e) {
      update((r) => ({ ...r, error: e instanceof Error ? e.message : String(e), done: true }));
    }
  };
  return { run, setRun, start, busy: run !== null && !run.done };
}

/** The live view of a run: its deploy id, the counts (a selector), the
 *  error, the outcome(s) and the steps. */
export function RunView(props: { run: Run; fleet: boolean }) {
  const { run } = props;
  const c = counts(run);
  return (
    <section aria-label="Deploy progress">
      <h3>{run.done ? "Finished" : "Running…"}</h3>
      {run.deployId && (
        <p>
          Deploy <Link href={deployHref(run.deployId)}>{run.deployId.slice(0, 12)}</Link>
        </p>
      )}
      {props.fleet && (
        <p class="counts">
          updated {c.updated} · failed (rolled back) {c.failed} · untouched {c.untouched}
        </p>
      )}
      {run.error && (
        <p class="error" role="alert">
          {run.error}
        </p>
      )}
      {run.outcome && <Outcome outcome={run.outcome} />}
      {run.fleet?.deploys.map((d) => <Outcome key={d.deploy_id} outcome={d} link />)}
      <Steps steps={run.steps} label="Live steps" />
    </section>
  );
}

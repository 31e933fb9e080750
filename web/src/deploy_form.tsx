// "New deploy" (operator and admin): runs `deploy` on one server or on every
// agent matching a label selector and shows each step as it comes, then the
// outcome; for a selector also the servers updated, failed (rolled back)
// and untouched so far.

import { useEffect, useState } from "preact/hooks";
import type { Api } from "./api";
import { deployHref } from "./deploys";
import { Link } from "./link";
import { Outcome, Steps } from "./outcome";
import type { AgentSummary, DeployOutcome, DeployProgress, ErrorBody, FleetOutcome } from "./types";

/** Steps kept in the live view (a deploy has a few dozen per server). */
const MAX_STEPS = 1000;

interface Run {
  steps: DeployProgress[];
  finished: Record<string, string>;
  deployId?: string;
  outcome?: DeployOutcome;
  fleet?: FleetOutcome;
  error?: string;
  done: boolean;
}

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

export function NewDeploy(props: { api: Api }) {
  const [agents, setAgents] = useState<AgentSummary[]>([]);
  const [mode, setMode] = useState<"server" | "selector">("server");
  const [server, setServer] = useState("");
  const [selector, setSelector] = useState("");
  const [image, setImage] = useState("");
  const [container, setContainer] = useState("");
  const [pull, setPull] = useState("missing");
  const [health, setHealth] = useState("300");
  const [batch, setBatch] = useState("1");
  const [run, setRun] = useState<Run | null>(null);
  useEffect(() => {
    props.api.call<AgentSummary[]>("list_agents").then(
      (a) => {
        setAgents(a);
        setServer((s) => s || (a[0]?.name ?? ""));
      },
      (e) => setRun({ steps: [], finished: {}, error: e instanceof Error ? e.message : String(e), done: true }),
    );
  }, [props.api]);
  const start = async () => {
    const payload: Record<string, unknown> = { image: image.trim(), pull, health_timeout_s: Number(health) };
    if (container.trim()) payload.container = container.trim();
    if (mode === "selector") payload.max_parallel = Number(batch);
    const target = mode === "server" ? { server } : { selector: selector.trim() };
    let r: Run = { steps: [], finished: {}, done: false };
    setRun(r);
    const update = (f: (r: Run) => Run) => {
      r = f(r);
      setRun(r);
    };
    try {
      await props.api.send("deploy", target, payload, (reply) => {
        if (reply.type === "progress") {
          const p = reply.data as DeployProgress;
          const step = reply.server && mode === "selector" ? { ...p, container: `${reply.server} ${p.container}`.trim() } : p;
          update((r) => ({
            ...r,
            deployId: r.deployId ?? (mode === "server" ? p.deploy_id : undefined),
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
  const busy = run !== null && !run.done;
  const c = run && counts(run);
  return (
    <section>
      <p class="crumbs">
        <Link href="/deploys">Deploys</Link> / new
      </p>
      <h2>New deploy</h2>
      <form
        class="form"
        onSubmit={(e) => {
          e.preventDefault();
          start();
        }}
      >
        <label>
          Target
          <select aria-label="Target" value={mode} onChange={(e) => setMode(e.currentTarget.value as "server" | "selector")}>
            <option value="server">one server</option>
            <option value="selector">servers by label selector</option>
          </select>
        </label>
        {mode === "server" ? (
          <label>
            Server
            <select aria-label="Server" value={server} onChange={(e) => setServer(e.currentTarget.value)}>
              {agents.map((a) => (
                <option key={a.name} value={a.name}>
                  {a.name}
                  {a.online ? "" : " (offline)"}
                </option>
              ))}
            </select>
          </label>
        ) : (
          <label>
            Selector
            <input placeholder="env=prod,role=web" value={selector} onInput={(e) => setSelector(e.currentTarget.value)} />
          </label>
        )}
        <label>
          Image
          <input placeholder="myapp:2.1" value={image} onInput={(e) => setImage(e.currentTarget.value)} />
        </label>
        <label>
          Container
          <input placeholder="every container of the image's repository" value={container} onInput={(e) => setContainer(e.currentTarget.value)} />
        </label>
        <label>
          Pull policy
          <select aria-label="Pull policy" value={pull} onChange={(e) => setPull(e.currentTarget.value)}>
            <option value="missing">missing</option>
            <option value="always">always</option>
            <option value="never">never</option>
          </select>
        </label>
        <label>
          Health timeout (s)
          <input type="number" min="1" value={health} onInput={(e) => setHealth(e.currentTarget.value)} />
        </label>
        {mode === "selector" && (
          <label>
            Batch size
            <input type="number" min="1" max="100" value={batch} onInput={(e) => setBatch(e.currentTarget.value)} />
          </label>
        )}
        <button type="submit" disabled={busy || !image.trim() || (mode === "server" ? !server : !selector.trim())}>
          Deploy
        </button>
      </form>
      {run && (
        <section aria-label="Deploy progress">
          <h3>{run.done ? "Finished" : "Running…"}</h3>
          {run.deployId && (
            <p>
              Deploy <Link href={deployHref(run.deployId)}>{run.deployId.slice(0, 12)}</Link>
            </p>
          )}
          {mode === "selector" && c && (
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
      )}
    </section>
  );
}

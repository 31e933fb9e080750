// "New deploy" (operator and admin): runs `deploy` on one server or on every
// agent matching a label selector and shows each step as it comes, then the
// outcome; for a selector also the servers updated, failed (rolled back)
// and untouched so far.

import { useEffect, useState } from "preact/hooks";
import type { Api } from "./api";
import { RunView, useDeployRun } from "./deploy_run";
import { Link } from "./link";
import type { AgentSummary } from "./types";

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
  const { run, setRun, start: startRun, busy } = useDeployRun(props.api);
  useEffect(() => {
    props.api.call<AgentSummary[]>("list_agents").then(
      (a) => {
        setAgents(a);
        setServer((s) => s || (a[0]?.name ?? ""));
      },
      (e) => setRun({ steps: [], finished: {}, error: e instanceof Error ? e.message : String(e), done: true }),
    );
  }, [props.api]);
  const start = () => {
    const payload: Record<string, unknown> = { image: image.trim(), pull, health_timeout_s: Number(health) };
    if (container.trim()) payload.container = container.trim();
    if (mode === "selector") payload.max_parallel = Number(batch);
    startRun(mode === "server" ? { server } : { selector: selector.trim() }, payload);
  };
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
      {run && <RunView run={run} fleet={mode === "selector"} />}
    </section>
  );
}

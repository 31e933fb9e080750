// A deploy's outcome and steps, shared by the deploy page and the live view
// of the "New deploy" form.

import { Link } from "./link";
import type { DeployOutcome, DeployProgress } from "./types";

export function outcomeClass(outcome?: string | null): string {
  if (outcome === "succeeded") return "ok";
  if (outcome === "rolled_back" || outcome === "failed" || outcome === "unknown") return "bad";
  return "";
}

export const outcomeText = (outcome?: string | null) => (outcome ?? "").replace("_", " ");

/** Steps with their time since the first, and how long each lasted (until
 *  the next step of the same container). Pull byte counts are left out. */
export function Steps(props: { steps: DeployProgress[]; label?: string }) {
  const steps = props.steps.filter((s) => s.step !== "pull_progress");
  const t0 = steps.length ? steps[0].at_ms : 0;
  return (
    <table aria-label={props.label ?? "Steps"}>
      <thead>
        <tr>
          <th>At</th>
          <th>Took</th>
          <th>Container</th>
          <th>Step</th>
          <th>Status</th>
          <th>Detail</th>
        </tr>
      </thead>
      <tbody>
        {steps.map((s, i) => {
          const next = steps.slice(i + 1).find((x) => x.container === s.container);
          return (
            <tr key={i} class={s.status === "failed" ? "bad" : ""}>
              <td class="t">+{((s.at_ms - t0) / 1000).toFixed(1)} s</td>
              <td class="t">{next ? `${((next.at_ms - s.at_ms) / 1000).toFixed(1)} s` : ""}</td>
              <td>{s.container}</td>
              <td>{s.step}</td>
              <td>{s.status}</td>
              <td>{s.error ? `${s.detail ?? ""} ${s.error}`.trim() : (s.detail ?? "")}</td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

/** One server's outcome: the verdict, the error, each container's result
 *  with its failed step and the new container's last log lines. */
export function Outcome(props: { outcome: DeployOutcome; link?: boolean }) {
  const o = props.outcome;
  const containers = o.containers ?? [];
  const took = o.started_ms && o.finished_ms ? ` in ${((o.finished_ms - o.started_ms) / 1000).toFixed(1)} s` : "";
  return (
    <div class="outcome" aria-label={`Outcome ${o.server ?? ""}`.trim()}>
      <p>
        {o.server && <strong>{o.server}: </strong>}
        <span class={outcomeClass(o.outcome)}>{outcomeText(o.outcome)}</span>
        {took}
        {props.link && o.deploy_id && (
          <>
            {" · "}
            <Link href={`/deploys/${encodeURIComponent(o.deploy_id)}`}>deploy {o.deploy_id.slice(0, 12)}</Link>
          </>
        )}
        {o.error && <span class="error"> · {o.error}</span>}
      </p>
      {containers.length > 0 && (
        <table aria-label="Containers">
          <thead>
            <tr>
              <th>Container</th>
              <th>From</th>
              <th>To</th>
              <th>Outcome</th>
              <th>Failed step</th>
              <th>Error</th>
            </tr>
          </thead>
          <tbody>
            {containers.map((c) => (
              <tr key={c.container}>
                <td>{c.container}</td>
                <td>{c.from_image}</td>
                <td>{c.to_image}</td>
                <td class={outcomeClass(c.outcome)}>{outcomeText(c.outcome)}</td>
                <td>{c.failed_step ?? ""}</td>
                <td>{c.error ?? ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {containers
        .filter((c) => c.logs_tail)
        .map((c) => (
          <div key={c.container}>
            <h4>Log tail of the new {c.container}</h4>
            <pre class="tail">{c.logs_tail}</pre>
          </div>
        ))}
    </div>
  );
}

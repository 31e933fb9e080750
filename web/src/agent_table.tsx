// The agent page's containers: state, health, restarts, CPU, memory and
// network from the latest `status` snapshot, and a sparkline of the last
// hour of CPU and memory per container (sparkline.tsx).

import type { Api } from "./api";
import { Link, containerHref } from "./link";
import { type Spark, Sparkline, useSparks } from "./sparkline";
import type { ContainerHealth } from "./types";

const MIB = 1048576;

function bytes(n?: number): string {
  if (n == null) return "";
  if (n < 1024) return `${n} B`;
  if (n < MIB) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 * MIB) return `${(n / MIB).toFixed(1)} MiB`;
  return `${(n / (1024 * MIB)).toFixed(2)} GiB`;
}

/** The sparklines' cell: CPU and memory, an error, or a wait. */
function Sparks(props: { spark?: Spark | string }) {
  const s = props.spark;
  if (s === undefined) return <span class="muted">…</span>;
  if (typeof s === "string") {
    return (
      <span class="muted" title={s}>
        no history yet
      </span>
    );
  }
  return (
    <span class="sparks">
      <Sparkline t={s.t} values={s.cpu} label="CPU" unit="%" />
      <Sparkline t={s.t} values={s.mem} label="Memory" unit="MiB" scale={MIB} />
    </span>
  );
}

export function ContainerTable(props: {
  api: Api;
  agent: string;
  containers: ContainerHealth[];
  picked: Set<string> | null;
  onPick: (name: string, on: boolean) => void;
  onPickAll: (on: boolean) => void;
}) {
  const { containers, picked } = props;
  const sparks = useSparks(
    props.api,
    props.agent,
    containers.map((c) => c.name),
  );
  const all = picked !== null && containers.length > 0 && containers.every((c) => picked.has(c.name));
  return (
    <table aria-label="Containers">
      <thead>
        <tr>
          {picked && (
            <th>
              <input type="checkbox" aria-label="Select all" checked={all} onChange={(e) => props.onPickAll(e.currentTarget.checked)} />
            </th>
          )}
          <th>Container</th>
          <th>Image</th>
          <th>State</th>
          <th>Health</th>
          <th>Restarts</th>
          <th>CPU</th>
          <th>Memory</th>
          <th title="received and sent since the container started">Network</th>
          <th>Last hour (CPU, memory)</th>
        </tr>
      </thead>
      <tbody>
        {containers.map((c) => (
          <tr key={c.id}>
            {picked && (
              <td>
                <input
                  type="checkbox"
                  aria-label={`Select ${c.name}`}
                  checked={picked.has(c.name)}
                  onChange={(e) => props.onPick(c.name, e.currentTarget.checked)}
                />
              </td>
            )}
            <td>
              <Link href={containerHref(props.agent, c.name)}>{c.name}</Link>
            </td>
            <td>{c.image}</td>
            <td>{c.state}</td>
            <td>{c.health ?? ""}</td>
            <td>{c.restarts}</td>
            <td>{c.cpu_percent == null ? "" : `${c.cpu_percent.toFixed(1)} %`}</td>
            <td>{c.mem_usage ? `${(c.mem_usage / MIB).toFixed(1)} MiB` : ""}</td>
            <td class="t">{c.net_rx == null && c.net_tx == null ? "" : `↓ ${bytes(c.net_rx)} ↑ ${bytes(c.net_tx)}`}</td>
            <td>
              <Sparks spark={sparks.get(c.name)} />
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

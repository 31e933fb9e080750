// The agent page's sparklines: each container's last hour of CPU and memory
// from `history`, drawn as a small SVG polyline. Not a uPlot per row: a
// uPlot is a canvas, a legend, a cursor and listeners for each chart, where
// a row needs one line of at most SPARK_POINTS points and no interaction; an
// SVG polyline is one DOM node that the browser scales itself.

import { useEffect, useState } from "preact/hooks";
import type { Api } from "./api";
import type { History } from "./types";

/** At most this many `history` requests in flight at once, so an agent with
 *  many containers does not queue dozens of store reads on the hub at once. */
const SPARK_CONCURRENCY = 4;
/** How often the sparklines are read again (the finest tier is 5 s; a
 *  sparkline of an hour does not need more). */
const SPARK_REFRESH_MS = 60000;
/** Points drawn per line: one per 30 s of the hour (the 720 points of 5 s
 *  are reduced to the max of each 30 s). */
const SPARK_POINTS = 120;
const HOUR_S = 3600;
const W = 120;
const H = 24;

/** One container's last hour, reduced: `t` are bucket indexes 0..SPARK_POINTS-1. */
export interface Spark {
  t: number[];
  cpu: number[];
  mem: number[];
}

/** Reduce the 5 s points of an hour to the max of each of SPARK_POINTS buckets. */
function reduce(h: History, now: number): Spark {
  const cpu = new Map<number, number>();
  const mem = new Map<number, number>();
  const from = now - HOUR_S;
  for (const p of h.points) {
    const b = Math.floor(((p.t_s - from) / HOUR_S) * SPARK_POINTS);
    if (b < 0 || b >= SPARK_POINTS) continue;
    cpu.set(b, Math.max(cpu.get(b) ?? 0, p.cpu_max ?? p.cpu_avg ?? 0));
    mem.set(b, Math.max(mem.get(b) ?? 0, p.mem_max));
  }
  const t = [...mem.keys()].sort((a, b) => a - b);
  return { t, cpu: t.map((b) => cpu.get(b) ?? 0), mem: t.map((b) => mem.get(b) ?? 0) };
}

/** The sparklines of `names` on `agent`, read at most SPARK_CONCURRENCY at a
 *  time, again every SPARK_REFRESH_MS; only the names given are kept, so
 *  removed containers leave nothing behind. A value is a Spark or an error. */
export function useSparks(api: Api, agent: string, names: string[]): Map<string, Spark | string> {
  const [sparks, setSparks] = useState<Map<string, Spark | string>>(new Map());
  const key = [...names].sort().join("\n");
  useEffect(() => {
    const wanted = key ? key.split("\n") : [];
    let live = true;
    let running = false;
    const put = (name: string, v: Spark | string) =>
      setSparks((old) => {
        const next = new Map([...old].filter(([n]) => wanted.includes(n)));
        next.set(name, v);
        return next;
      });
    const round = async () => {
      if (running) return;
      running = true;
      const queue = [...wanted];
      const worker = async () => {
        for (let name = queue.shift(); name !== undefined && live; name = queue.shift()) {
          const n = name;
          await api.call<History>("history", { server: agent }, { container: n, since: "1h", resolution: "5s" }).then(
            (h) => live && put(n, reduce(h, Date.now() / 1000)),
            (e) => live && put(n, e instanceof Error ? e.message : String(e)),
          );
        }
      };
      await Promise.all(Array.from({ length: Math.min(SPARK_CONCURRENCY, queue.length) }, worker));
      running = false;
    };
    setSparks((old) => new Map([...old].filter(([n]) => wanted.includes(n))));
    round();
    const timer = setInterval(round, SPARK_REFRESH_MS);
    return () => {
      live = false;
      clearInterval(timer);
    };
  }, [api, agent, key]);
  return sparks;
}

/** One line of `values` at bucket positions `t`, scaled to its own max. */
export function Sparkline(props: { t: number[]; values: number[]; label: string; unit: string; scale?: number }) {
  const max = Math.max(...props.values, 0);
  const top = max > 0 ? max : 1;
  const points = props.t
    .map((b, i) => `${((b / (SPARK_POINTS - 1)) * W).toFixed(1)},${(H - 1 - (props.values[i] / top) * (H - 2)).toFixed(1)}`)
    .join(" ");
  const shown = (max / (props.scale ?? 1)).toFixed(1);
  const title = `${props.label}, last hour: ${props.t.length} points, max ${shown} ${props.unit}`;
  return (
    <svg class="spark" viewBox={`0 0 ${W} ${H}`} width={W} height={H} role="img" aria-label={title} data-points={props.t.length}>
      <title>{title}</title>
      <polyline points={points} />
    </svg>
  );
}

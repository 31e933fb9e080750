// The "Stats" tab: CPU, memory and network charts (uPlot) from `history`,
// at the tiers the hub keeps (5 s for 1 h, 1 min for 24 h, 15 min for
// 30 d), with the live point from `status` appended.

import { useEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import type { Api } from "./api";
import type { ContainerHealth, History } from "./types";

/** The ranges offered, each at the tier that covers it (hub/src/store/health.rs). */
const RANGES = [
  { label: "1 h", since: 3600, resolution: "5s" },
  { label: "24 h", since: 86400, resolution: "1m" },
  { label: "30 d", since: 30 * 86400, resolution: "15m" },
];
/** How often the history is read again (the finest tier is 5 s). */
const RELOAD_MS = 15000;
const CHART_HEIGHT = 180;
const MIB = 1048576;

type Series = (number | null)[];
interface Chart {
  title: string;
  unit: string;
  names: string[];
  colors: string[];
  data: [number[], ...Series[]];
}

function charts(h: History, live: ContainerHealth | undefined, liveAt: number | null): Chart[] {
  const t: number[] = [];
  const cpuAvg: Series = [];
  const cpuMax: Series = [];
  const memAvg: Series = [];
  const memMax: Series = [];
  const rx: Series = [];
  const tx: Series = [];
  let prev: { t: number; rx: number; tx: number } | null = null;
  // Counters are cumulative at each bucket's last sample: a rate needs two,
  // and a counter that went down (a restart) starts over.
  const rate = (now: number, was: number | undefined, dt: number) =>
    was === undefined || now < was || dt <= 0 ? null : (now - was) / dt / 1024;
  const push = (at: number, ca: number | null, cm: number | null, ma: number, mm: number, nrx: number, ntx: number) => {
    t.push(at);
    cpuAvg.push(ca);
    cpuMax.push(cm);
    memAvg.push(ma / MIB);
    memMax.push(mm / MIB);
    rx.push(rate(nrx, prev?.rx, at - (prev?.t ?? at)));
    tx.push(rate(ntx, prev?.tx, at - (prev?.t ?? at)));
    prev = { t: at, rx: nrx, tx: ntx };
  };
  for (const p of h.points) push(p.t_s, p.cpu_avg ?? null, p.cpu_max ?? null, p.mem_avg, p.mem_max, p.net_rx, p.net_tx);
  if (live && liveAt && (t.length === 0 || liveAt > t[t.length - 1])) {
    const mem = live.mem_usage ?? 0;
    push(liveAt, live.cpu_percent ?? null, live.cpu_percent ?? null, mem, mem, live.net_rx ?? 0, live.net_tx ?? 0);
  }
  return [
    { title: "CPU", unit: "%", names: ["average", "max"], colors: ["#1f5fbf", "#9db8e6"], data: [t, cpuAvg, cpuMax] },
    { title: "Memory", unit: "MiB", names: ["average", "max"], colors: ["#18794e", "#9fd4b8"], data: [t, memAvg, memMax] },
    { title: "Network", unit: "KiB/s", names: ["received", "sent"], colors: ["#8a4baf", "#d08a1f"], data: [t, rx, tx] },
  ];
}

function Plot(props: { chart: Chart }) {
  const el = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const { chart } = props;
  useEffect(() => {
    if (!el.current) return;
    const u = new uPlot(
      {
        width: Math.max(300, el.current.clientWidth),
        height: CHART_HEIGHT,
        series: [
          {},
          ...chart.names.map((label, i) => ({ label: `${label} (${chart.unit})`, stroke: chart.colors[i], width: 1.5 })),
        ],
        axes: [{}, { size: 60 }],
      },
      chart.data as uPlot.AlignedData,
      el.current,
    );
    plot.current = u;
    return () => {
      u.destroy();
      plot.current = null;
    };
  }, [chart.title]);
  useEffect(() => {
    plot.current?.setData(chart.data as uPlot.AlignedData);
  }, [chart]);
  return (
    <figure class="chart" aria-label={`${chart.title} chart`}>
      <figcaption>{chart.title}</figcaption>
      <div ref={el} />
    </figure>
  );
}

export function Stats(props: {
  api: Api;
  agent: string;
  container: string;
  live?: ContainerHealth;
  liveAt: number | null;
}) {
  const [range, setRange] = useState(0);
  const [history, setHistory] = useState<History | null>(null);
  const [error, setError] = useState("");
  useEffect(() => {
    let live = true;
    const r = RANGES[range];
    const load = () =>
      props.api
        .call<History>("history", { server: props.agent }, { container: props.container, since: r.since, resolution: r.resolution })
        .then(
          (h) => live && (setHistory(h), setError("")),
          (e) => live && setError(e instanceof Error ? e.message : String(e)),
        );
    load();
    const timer = setInterval(load, RELOAD_MS);
    return () => {
      live = false;
      clearInterval(timer);
    };
  }, [props.api, props.agent, props.container, range]);
  return (
    <section aria-label="Stats">
      <div class="bar" role="group" aria-label="Range">
        {RANGES.map((r, i) => (
          <button key={r.label} type="button" class={i === range ? "on" : ""} aria-pressed={i === range} onClick={() => setRange(i)}>
            {r.label}
          </button>
        ))}
        <span class="muted">
          {history ? `${history.points.length} points of ${history.resolution_s} s, and the live one` : "loading…"}
        </span>
      </div>
      {error && <p class="error">{error}</p>}
      {history && charts(history, props.live, props.liveAt).map((c) => <Plot key={c.title} chart={c} />)}
    </section>
  );
}

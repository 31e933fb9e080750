// The dashboard's performance targets (issue 19) in headless Chromium,
// driven by playwright-core. Run by `nextdeploy-bench dashboard` (bench/src/
// dashboard/), one part per run: `node web/bench/dashboard.mjs PART`.
// Progress goes to stderr; stdout carries JSON lines: `{"checkpoint": ...}`
// while the heap part runs, and the part's figures last, `{"result": {...}}`.
// Every wait is bounded. Environment:
//   DASH_URL        the hub's dashboard, https://127.0.0.1:PORT/
//   DASH_TOKEN      an API token to sign in with
//   load:  DASH_AGENTS (agents online, for the fleet page's counts)
//   fleet: DASH_AGENTS, DASH_SELECTORS (comma-separated, e.g. shard=s07),
//          DASH_MATCHES (agents each selector matches)
//   logs:  DASH_AGENT, DASH_CONTAINER, DASH_LOG_LIMIT_S (how long to follow
//          at most), DASH_DOWNLOAD (where the downloaded log is saved)
//   heap:  DASH_AGENTS, DASH_CHECKPOINTS (minutes after the page opened,
//          comma-separated); DASH_HEAP_SNAPSHOTS (optional: a directory
//          where each checkpoint's CDP heap snapshot is written, after the
//          collection and the metrics, as minute-M.heapsnapshot)
import { chromium } from "playwright-core";
import fs from "node:fs";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const WAIT_MS = 30000;
/** The fleet page is interactive once no long task ran for this long. */
const QUIET_MS = 1000;
/** At most this long to reach that quiet window. */
const QUIET_LIMIT_MS = 30000;
/** Cold loads of the fleet page measured (the median is the figure). */
const FLEET_LOADS = 3;
/** How long the open fleet page's WebSocket traffic is metered. */
const WS_WINDOW_MS = 15000;
/** A page has loaded once no HTTP request was open or started for this long. */
const SETTLE_MS = 2000;
const part = process.argv[2];
const base = env("DASH_URL");
const origin = new URL(base).origin;
const log = (s) => process.stderr.write(`dashboard.mjs ${part}: ${s}\n`);
const emit = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);

// Installed before any page script: long tasks, and the time (ms since
// navigation start) of the first frame where a test passes.
const INIT = () => {
  const b = (window.__bench = { longtasks: [], ready: null, filters: [], gaps: [], frames: [] });
  // Gaps over 50 ms between animation frames (work a long task may not
  // cover: style, layout, paint), and every frame's time, in one loop.
  let prev = 0;
  const frame = (t) => {
    if (prev && t - prev > 50) b.gaps.push([prev, t - prev]);
    prev = t;
    b.frames.push(t);
    if (b.frames.length > 100000) b.frames.splice(0, 50000);
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
  try {
    new PerformanceObserver((l) => {
      for (const e of l.getEntries()) b.longtasks.push([e.startTime, e.duration]);
    }).observe({ type: "longtask", buffered: true });
  } catch {
    b.noLongtask = true;
  }
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox"],
  timeout: WAIT_MS,
});

/** A fresh context (empty cache), signed in when `signed`, with INIT's
 *  recorders unless `instrument` is false. */
async function context(signed, instrument = true) {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, acceptDownloads: true });
  if (signed) {
    const r = await ctx.request.post(new URL("/api/session", base).href, {
      data: { token: env("DASH_TOKEN") },
      headers: { Origin: origin },
    });
    if (!r.ok()) throw new Error(`POST /api/session: ${r.status()} ${await r.text()}`);
  }
  const page = await ctx.newPage();
  page.setDefaultTimeout(WAIT_MS);
  if (instrument) await page.addInitScript(INIT);
  return { ctx, page };
}

/** Bytes on the wire per response (CDP encodedDataLength: compressed
 *  body plus headers), and the WebSocket frames' payload bytes. A response
 *  whose loadingFinished never comes (Chromium holds the 401 of GET
 *  /api/session open) counts with what its responseReceived says. */
async function meter(page) {
  const cdp = await page.context().newCDPSession(page);
  const reqs = new Map();
  const ws = { frames: 0, bytes: 0 };
  let last = Date.now();
  cdp.on("Network.requestWillBeSent", (e) => {
    last = Date.now();
    reqs.set(e.requestId, { url: new URL(e.request.url).pathname, status: 0, encoding: "", bytes: 0, done: false });
  });
  cdp.on("Network.responseReceived", (e) => {
    const r = reqs.get(e.requestId);
    if (!r) return;
    last = Date.now();
    const h = Object.fromEntries(Object.entries(e.response.headers).map(([k, v]) => [k.toLowerCase(), v]));
    Object.assign(r, { status: e.response.status, encoding: h["content-encoding"] ?? "", bytes: e.response.encodedDataLength });
  });
  const finish = (e, bytes) => {
    const r = reqs.get(e.requestId);
    if (!r) return;
    last = Date.now();
    r.done = true;
    if (bytes != null) r.bytes = bytes;
  };
  cdp.on("Network.loadingFailed", (e) => finish(e, null));
  cdp.on("Network.loadingFinished", (e) => finish(e, e.encodedDataLength));
  cdp.on("Network.webSocketFrameReceived", (e) => {
    ws.frames++;
    ws.bytes += e.response.payloadData.length;
  });
  await cdp.send("Network.enable");
  const open = () => [...reqs.values()].filter((r) => !r.done && !r.status);
  /** No request without a response, and none started, for SETTLE_MS (bounded). */
  const settled = async () => {
    const t0 = Date.now();
    while ((open().length || Date.now() - last < SETTLE_MS) && Date.now() - t0 < WAIT_MS) await new Promise((r) => setTimeout(r, 100));
    if (open().length) throw new Error(`requests unanswered after ${WAIT_MS} ms: ${open().map((r) => r.url).join(" ")}`);
  };
  const assets = () => [...reqs.values()].map(({ url, status, encoding, bytes, done }) => ({ url, status, encoding, bytes, finished: done }));
  const total = () => assets().reduce((s, a) => s + a.bytes, 0);
  return { assets, total, ws: () => ({ ...ws }), cdp, settled };
}

const counts = (n) => new RegExp(`Agents: ${n} online, 0 offline, ${n} total`);

async function partLoad() {
  const n = env("DASH_AGENTS");
  const out = {};
  {
    const { ctx, page } = await context(false);
    const m = await meter(page);
    await page.goto(base);
    await page.getByLabel("API token").waitFor();
    await m.settled();
    out.signin = { bytes: m.total(), assets: m.assets() };
    log(`sign-in page: ${out.signin.bytes} bytes`);
    await ctx.close();
  }
  const { ctx, page } = await context(true);
  const m = await meter(page);
  await page.goto(base);
  await page.getByTestId("fleet-counts").filter({ hasText: counts(n) }).waitFor();
  await page.locator("tbody tr:not(.spacer)").first().waitFor();
  await m.settled();
  out.fleet = { bytes: m.total(), assets: m.assets(), ws: m.ws() };
  log(`fleet page: ${out.fleet.bytes} bytes over HTTP, ${out.fleet.ws.bytes} WebSocket payload bytes`);
  await ctx.close();
  return out;
}

/** Wait for a window of QUIET_MS without a long task after `from` (ms since
 *  navigation start); the end of the last long task before it. */
async function quietAfter(page, from) {
  return page.evaluate(
    ([from, quiet, limit]) =>
      new Promise((resolve) => {
        const t0 = performance.now();
        const check = () => {
          const lt = window.__bench.longtasks;
          const lastEnd = lt.reduce((m, [s, d]) => Math.max(m, s + d), 0);
          const since = Math.max(from, lastEnd);
          if (performance.now() - since >= quiet) resolve({ interactive: since, quiet: true });
          else if (performance.now() - t0 > limit) resolve({ interactive: since, quiet: false });
          else setTimeout(check, 50);
        };
        check();
      }),
    [from, QUIET_MS, QUIET_LIMIT_MS],
  );
}

/** One cold load of the fleet page (fresh context): when it was ready and
 *  interactive; the page stays open. */
async function fleetLoad(n) {
  const { ctx, page } = await context(true);
  await page.addInitScript((n) => {
    // The first frame where the counts show all agents and rows are drawn.
    const re = new RegExp(`Agents: ${n} online, 0 offline, ${n} total`);
    const tick = (t) => {
      const c = document.querySelector('[data-testid="fleet-counts"]');
      if (c && re.test(c.textContent) && document.querySelector("tbody tr:not(.spacer) a")) window.__bench.ready = t;
      else requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  }, n);
  const m = await meter(page);
  await page.goto(base);
  await page.waitForFunction(() => window.__bench.ready !== null, null, { timeout: WAIT_MS });
  const ready = await page.evaluate(() => window.__bench.ready);
  const q = await quietAfter(page, ready);
  const longBefore = await page.evaluate((t) => window.__bench.longtasks.filter(([s]) => s <= t), q.interactive);
  log(`ready at ${ready.toFixed(0)} ms, interactive at ${q.interactive.toFixed(0)} ms`);
  const load = {
    ready_ms: ready,
    interactive_ms: q.interactive,
    quiet_reached: q.quiet,
    longtasks_before_interactive: longBefore.map(([s, d]) => ({ start_ms: s, ms: d })),
  };
  return { ctx, page, m, load };
}

async function partFleet() {
  const n = Number(env("DASH_AGENTS"));
  const want = Number(env("DASH_MATCHES"));
  const loads = [];
  for (let i = 1; i < FLEET_LOADS; i++) {
    const l = await fleetLoad(n);
    loads.push(l.load);
    await l.ctx.close();
  }
  const { ctx, page, m, load } = await fleetLoad(n);
  loads.push(load);
  // What the open page receives over its WebSocket while it stays open.
  const ws0 = m.ws().bytes;
  await page.waitForTimeout(WS_WINDOW_MS);
  const wsPerS = ((m.ws().bytes - ws0) * 1000) / WS_WINDOW_MS;
  log(`open page: ${(wsPerS / 1000).toFixed(0)} kB/s of WebSocket payload`);

  const sel = page.getByLabel("Label selector");
  const filters = [];
  for (const s of env("DASH_SELECTORS").split(",")) {
    // From the input event to the end of the frame that first shows the
    // filtered list (a task posted from that frame's rAF runs after its paint).
    const measure = page.evaluate(
      ([want, total, limit]) =>
        new Promise((resolve, reject) => {
          const input = document.querySelector('input[aria-label="Label selector"]');
          const timer = setTimeout(() => reject(new Error("the filtered list never showed")), limit);
          input.addEventListener(
            "input",
            (ev) => {
              const t0 = ev.timeStamp;
              const text = `${want} of ${total} agents shown`;
              const tick = () => {
                const shown = [...document.querySelectorAll("p.muted")].some((p) => p.textContent === text);
                if (!shown) return requestAnimationFrame(tick);
                const ch = new MessageChannel();
                ch.port1.onmessage = () => {
                  clearTimeout(timer);
                  resolve(performance.now() - t0);
                };
                ch.port2.postMessage(0);
              };
              requestAnimationFrame(tick);
            },
            { once: true, capture: true },
          );
        }),
      [want, n, WAIT_MS],
    );
    await sel.fill(s);
    const ms = await measure;
    filters.push({ selector: s, ms });
    log(`filter ${s}: ${ms.toFixed(1)} ms`);
    await sel.fill("");
    await page.getByText(`${n} of ${n} agents shown`).waitFor();
    await page.waitForTimeout(300);
  }
  const b = await page.evaluate(() => ({ lt: window.__bench.longtasks, no: window.__bench.noLongtask ?? false }));
  await ctx.close();
  return { loads, quiet_ms: QUIET_MS, longtask_observer_missing: b.no, ws_bytes_per_s: wsPerS, filters };
}

/** The numbers in the Logs view's status line. */
const statusNumbers = (t) => ({
  loaded: Number(/(\d+) lines loaded/.exec(t)?.[1] ?? NaN),
  dropped: Number(/(\d+) oldest lines dropped/.exec(t)?.[1] ?? 0),
  // Received, past the 20,000 kept for search: kept as text for Download.
  archived: Number(/(\d+) older lines kept for Download only/.exec(t)?.[1] ?? 0),
  text: t,
});

async function partLogs() {
  const limitS = Number(env("DASH_LOG_LIMIT_S"));
  const { ctx, page } = await context(true);
  // The agent connected (the fleet page lists it online), then its container.
  await page.goto(base);
  await page.getByTestId("fleet-counts").filter({ hasText: /Agents: 1 online/ }).waitFor({ timeout: WAIT_MS * 2 });
  await page.goto(new URL(`/agents/${env("DASH_AGENT")}/containers/${env("DASH_CONTAINER")}`, base).href);
  const logs = page.getByRole("region", { name: "Logs" });
  const status = logs.getByRole("status");
  await status.filter({ hasText: /following/ }).waitFor();
  await logs.locator("div.stdout", { hasText: /^start$/ }).waitFor();
  const followAt = await page.evaluate(() => performance.now());
  emit({ following: true });
  log("following; waiting for the first line");
  await logs.locator("div.stdout", { hasText: /^line \d+$/ }).first().waitFor({ timeout: WAIT_MS * 2 });
  const firstAt = await page.evaluate(() => performance.now());
  await status.filter({ hasText: /ended/ }).waitFor({ timeout: limitS * 1000 });
  const endAt = await page.evaluate(() => performance.now());
  // Let the last frame's lines in.
  await page.waitForTimeout(500);
  const st = statusNumbers(await status.textContent());
  log(`ended: ${st.text}`);
  const { lt, gaps, frames } = await page.evaluate(() => ({ lt: window.__bench.longtasks, gaps: window.__bench.gaps, frames: window.__bench.frames }));
  const during = lt.filter(([s, d]) => s + d >= firstAt && s <= endAt + 500);
  const gapsDuring = gaps.filter(([s, d]) => s + d >= firstAt && s <= endAt);
  const framesDuring = frames.filter((t) => t >= firstAt && t <= endAt).length;
  const [dl] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Download" }).click()]);
  await dl.saveAs(env("DASH_DOWNLOAD"));
  const rows = await logs.locator("pre.log > div").count();
  await ctx.close();
  return {
    follow_to_first_line_ms: firstAt - followAt,
    follow_s: (endAt - firstAt) / 1000,
    status: st,
    dom_rows: rows,
    longtasks: during.length,
    longtask_max_ms: during.reduce((m, [, d]) => Math.max(m, d), 0),
    longtask_total_ms: during.reduce((m, [, d]) => m + d, 0),
    longtask_ms: during.map(([, d]) => Math.round(d)),
    frame_gap_ms: gapsDuring.map(([, d]) => Math.round(d)),
    frames_per_s: framesDuring / ((endAt - firstAt) / 1000),
  };
}

/** Write the page's heap snapshot (CDP, in chunks) to `file`. */
async function heapSnapshot(cdp, file) {
  const out = fs.createWriteStream(file);
  const chunk = (e) => out.write(e.chunk);
  cdp.on("HeapProfiler.addHeapSnapshotChunk", chunk);
  await cdp.send("HeapProfiler.takeHeapSnapshot", { reportProgress: false });
  cdp.off("HeapProfiler.addHeapSnapshotChunk", chunk);
  await new Promise((resolve, reject) => out.end((e) => (e ? reject(e) : resolve())));
  log(`heap snapshot ${file}`);
}

async function partHeap() {
  const n = env("DASH_AGENTS");
  const marks = env("DASH_CHECKPOINTS").split(",").map(Number);
  // The page alone: INIT's frame recorder keeps every animation frame's time
  // (60 a second, up to 100,000, about 1 MiB), which was most of the growth
  // this part measured over its first half hour.
  const { ctx, page } = await context(true, false);
  const cdp = await ctx.newCDPSession(page);
  await cdp.send("Performance.enable");
  await page.goto(base);
  await page.getByTestId("fleet-counts").filter({ hasText: counts(n) }).waitFor({ timeout: WAIT_MS * 4 });
  const t0 = Date.now();
  const points = [];
  for (const m of marks) {
    await page.waitForTimeout(Math.max(0, t0 + m * 60000 - Date.now()));
    await cdp.send("HeapProfiler.collectGarbage");
    const metrics = Object.fromEntries((await cdp.send("Performance.getMetrics")).metrics.map((x) => [x.name, x.value]));
    const online = /Agents: (\d+) online/.exec((await page.getByTestId("fleet-counts").textContent()) ?? "")?.[1];
    const p = {
      minute: m,
      js_heap_mib: metrics.JSHeapUsedSize / 1048576,
      js_heap_total_mib: metrics.JSHeapTotalSize / 1048576,
      dom_nodes: metrics.Nodes,
      listeners: metrics.JSEventListeners,
      online: Number(online),
    };
    points.push(p);
    emit({ checkpoint: p });
    if (process.env.DASH_HEAP_SNAPSHOTS) await heapSnapshot(cdp, `${process.env.DASH_HEAP_SNAPSHOTS}/minute-${m}.heapsnapshot`);
    log(`minute ${m}: heap ${p.js_heap_mib.toFixed(2)} MiB, ${p.dom_nodes} nodes, ${p.online} online`);
  }
  await ctx.close();
  return { points };
}

const parts = { load: partLoad, fleet: partFleet, logs: partLogs, heap: partHeap };
let code = 0;
try {
  if (!parts[part]) throw new Error(`unknown part ${part}: one of ${Object.keys(parts).join(", ")}`);
  emit({ result: await parts[part]() });
} catch (e) {
  log(`failed: ${e.stack ?? e}`);
  code = 1;
} finally {
  await browser.close();
}
process.exit(code);

// The container page and the agent page's actions in a real browser
// (Debian's Chromium, driven by playwright-core). Run by
// tests/tests/dashboard_container.rs against a hub with an agent; every wait
// is bounded. Environment:
//   DASH_URL         the hub's dashboard, https://127.0.0.1:PORT/
//   DASH_OPERATOR    an operator token
//   DASH_VIEWER      a viewer token
//   DASH_AGENT       the agent's name
//   DASH_TICK        a container writing "tick N" every 300 ms, started
//                    with the environment variable DASH_SECRET=<DASH_SECRET>
//   DASH_SECRET      that variable's value
//   DASH_IDLE        another running container (for the agent page's actions)
//   DASH_COLORS      a container that wrote "red alert" in ANSI red and a
//                    JSON line with "msg":"json line"
//   DASH_LINES       a container that wrote lines on stdout and stderr, two
//                    of them not UTF-8 ("binary")
//   DASH_RESTARTED   a container (DASH_IDLE) the test restarted with the CLI
//                    before the script started: the agent page's events
//                    show it through `since`
//   DASH_NEW_IMAGE   a new tag of the test image, deployed to DASH_IDLE from
//                    its container page
//   DASH_SHOTS       a directory for screenshots
import { chromium } from "playwright-core";
import { expected, go } from "./nav.mjs";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const WAIT_MS = 20000;
/** How long the page is kept paused while lines keep coming. */
const PAUSE_MS = 1500;
const shots = env("DASH_SHOTS");
const agent = env("DASH_AGENT");
const tick = env("DASH_TICK");
const idle = env("DASH_IDLE");
const restarted = env("DASH_RESTARTED");
const newImage = env("DASH_NEW_IMAGE");
/** The agent's snapshots reach the history every few seconds; the page
 *  reads it when it opens and every minute after. */
const SPARK_WAIT_MS = 75000;
/** A deploy without a health check waits for the new container to keep
 *  running for a while. */
const DEPLOY_WAIT_MS = 60000;
const secret = env("DASH_SECRET");
const url = (path) => new URL(path, env("DASH_URL")).href;
const containerPage = url(`/agents/${agent}/containers/${tick}`);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox"],
  timeout: WAIT_MS,
});
const problems = [];
/** Which part of the script runs, to say where a browser error came from. */
let phase = "start";
const check = (ok, what) => {
  if (!ok) throw new Error(what);
};

async function signIn(page, token) {
  await go(page, env("DASH_URL"));
  await page.getByLabel("API token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("link", { name: agent, exact: true }).waitFor();
}

/** Click `button` and confirm in the dialog it opens. */
async function confirmed(page, button, confirm) {
  await page.getByRole("button", { name: button, exact: true }).click();
  const dialog = page.getByRole("dialog");
  await dialog.waitFor();
  await dialog.getByRole("button", { name: confirm, exact: true }).click();
}

const tickNumbers = async (logs) =>
  (await logs.locator("div.stdout").allTextContents())
    .map((t) => /^tick (\d+)$/.exec(t))
    .filter(Boolean)
    .map((m) => Number(m[1]));

async function asOperator(page) {
  phase = "operator";
  await signIn(page, env("DASH_OPERATOR"));
  // Container page: a line written after it opened arrives; search marks it.
  await page.getByRole("link", { name: agent, exact: true }).click();
  await page.getByRole("link", { name: tick, exact: true }).click();
  const logs = page.getByRole("region", { name: "Logs" });
  const last = logs.locator("div.stdout", { hasText: /^tick \d+$/ }).last();
  await last.waitFor();
  const seen = Number((await last.textContent()).split(" ")[1]);
  const later = `tick ${seen + 2}`;
  await logs.locator("div.stdout", { hasText: new RegExp(`^${later}$`) }).waitFor();
  await page.getByLabel("Search").fill(later);
  await logs.locator("mark", { hasText: later }).waitFor();
  await page.getByText(new RegExp(`\\b1 matching "${later}"`)).waitFor();
  await page.screenshot({ path: `${shots}/container-logs.png`, fullPage: true });
  console.log(`logs: "${later}" arrived and search marked it`);
  await page.getByLabel("Search").fill("");

  // Pause, let lines come, resume: none lost (the numbers stay consecutive).
  await page.getByRole("button", { name: "Pause" }).click();
  await page.waitForTimeout(PAUSE_MS);
  await page.getByText(/paused, [1-9]\d* new lines held/).waitFor();
  const frozen = await tickNumbers(logs);
  await page.getByRole("button", { name: "Resume" }).click();
  const after = frozen[frozen.length - 1] + 2;
  await logs.locator("div.stdout", { hasText: new RegExp(`^tick ${after}$`) }).waitFor();
  const nums = await tickNumbers(logs);
  for (let i = 1; i < nums.length; i++) {
    check(nums[i] === nums[i - 1] + 1, `a line was lost around pause: ${nums[i - 1]} then ${nums[i]}`);
  }
  console.log(`logs: paused at tick ${frozen[frozen.length - 1]}, resumed without a gap`);

  // Restart from the page: its start time changes; stop: the state does.
  const started = page.getByTestId("started");
  const before = await started.getAttribute("title");
  await confirmed(page, "Restart", "Restart");
  await page.getByRole("alert").filter({ hasText: `restart ${tick}: done` }).waitFor();
  await page.waitForFunction(
    (b) => {
      const t = document.querySelector('[data-testid="started"]')?.getAttribute("title");
      return t && t !== b;
    },
    before,
    { timeout: WAIT_MS },
  );
  await confirmed(page, "Stop", "Stop");
  await page.getByTestId("state").filter({ hasText: /^exited$/ }).waitFor();
  await confirmed(page, "Start", "Start");
  await page.getByTestId("state").filter({ hasText: /^running$/ }).waitFor();
  console.log("actions: restart changed its start time, stop and start its state");

  await page.getByRole("tab", { name: "Inspect" }).click();
  await page.locator("pre.inspect", { hasText: `DASH_SECRET=${secret}` }).waitFor();
  await page.screenshot({ path: `${shots}/container-inspect.png`, fullPage: true });
  console.log("inspect: the operator sees the env value");

  await page.getByRole("tab", { name: "Stats" }).click();
  const charts = page.getByRole("region", { name: "Stats" }).locator("figure.chart canvas");
  await charts.nth(2).waitFor();
  check((await charts.count()) === 3, `${await charts.count()} charts drawn`);
  await page.getByRole("button", { name: "24 h" }).click();
  await page.getByText(/points of 60 s/).waitFor();
  await page.getByRole("button", { name: "1 h" }).click();
  await page.getByText(/points of 5 s/).waitFor();
  await page.screenshot({ path: `${shots}/container-stats.png`, fullPage: true });
  console.log("stats: CPU, memory and network charts drawn, 1 h at 5 s, 24 h at 60 s");

  // Events tab: the restart made from this page above, replayed by `since`.
  await page.getByRole("tab", { name: "Events" }).click();
  const ownEvents = page.getByRole("region", { name: `Events of ${tick}` });
  await ownEvents.getByRole("cell", { name: "restart", exact: true }).first().waitFor();
  await page.screenshot({ path: `${shots}/container-events.png`, fullPage: true });
  console.log("events: the container's Events tab shows its restart");

  // Agent page: host info, a sparkline per container, the agent's events
  // (the CLI restart made before the script, through `since`), and two
  // containers stopped and started at once.
  await page.getByRole("link", { name: agent, exact: true }).click();
  const host = page.getByRole("definition").filter({ hasText: /GiB free/ });
  await host.waitFor();
  const table = page.getByRole("table", { name: "Containers" });
  const rows = table.locator("tbody tr");
  const drawn = async () => {
    const n = await rows.count();
    const withSparks = await rows.filter({ has: page.locator("svg.spark polyline") }).count();
    return n > 0 && withSparks === n;
  };
  const sparkDeadline = Date.now() + SPARK_WAIT_MS;
  while (!(await drawn())) {
    check(Date.now() < sparkDeadline, `sparklines: ${await rows.filter({ has: page.locator("svg.spark") }).count()} of ${await rows.count()} rows`);
    await page.waitForTimeout(500);
  }
  const points = await table.locator("svg.spark").evaluateAll((s) => s.map((e) => Number(e.dataset.points)));
  check(points.some((p) => p >= 2), `sparkline points: ${points}`);
  const agentEvents = page.getByRole("region", { name: `Events of ${agent}` });
  await agentEvents.getByRole("row").filter({ hasText: restarted }).filter({ has: page.getByRole("cell", { name: "restart", exact: true }) })
    .first()
    .waitFor();
  await page.screenshot({ path: `${shots}/agent-page.png`, fullPage: true });
  console.log(`agent: a sparkline in each of ${await rows.count()} rows (points ${points}), the CLI restart of ${restarted} listed`);
  await page.getByLabel(`Select ${tick}`).check();
  await page.getByLabel(`Select ${idle}`).check();
  await page.screenshot({ path: `${shots}/agent-actions.png`, fullPage: true });
  await confirmed(page, "Stop selected", "Stop");
  await page.getByText(`stop ${idle}: done`).waitFor();
  await page.getByText(`stop ${tick}: done`).waitFor();
  const row = (name) => table.getByRole("row").filter({ has: page.getByRole("link", { name, exact: true }) });
  await row(idle).getByRole("cell", { name: "exited" }).waitFor();
  await confirmed(page, "Start selected", "Start");
  await page.getByText(`start ${tick}: done`).waitFor();
  await row(tick).getByRole("cell", { name: "running" }).waitFor();
  console.log("agent: host info shown, two containers stopped and started at once");

  // Container page: deploy a new tag of the image to idle; the outcome.
  await page.getByRole("link", { name: idle, exact: true }).click();
  await page.getByRole("tab", { name: "Deploy" }).click();
  const form = page.getByRole("form", { name: "Deploy this container" });
  check((await form.getByLabel("Container").inputValue()) === idle, "the container is not prefilled");
  check((await form.getByLabel("Server").inputValue()) === agent, "the server is not prefilled");
  await form.getByLabel("Image").fill(newImage);
  await form.getByLabel("Pull policy").selectOption("never");
  await form.getByLabel("Health timeout (s)").fill("30");
  await form.getByRole("button", { name: "Deploy", exact: true }).click();
  const progress = page.getByRole("region", { name: "Deploy progress" });
  await progress.getByRole("cell", { name: "accepted" }).first().waitFor();
  await progress.getByRole("heading", { name: "Finished" }).waitFor({ timeout: DEPLOY_WAIT_MS });
  const outcome = progress.locator(".outcome");
  await outcome.getByRole("cell", { name: "succeeded" }).waitFor();
  await outcome.getByRole("cell", { name: newImage, exact: true }).waitFor();
  await page.screenshot({ path: `${shots}/container-deploy.png`, fullPage: true });
  await page.getByTestId("state").filter({ hasText: /^running$/ }).waitFor();
  console.log(`deploy: ${idle} deployed to ${newImage} from its page, steps and outcome shown`);

  phase = "operator sign-out";
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByLabel("API token").waitFor();
}

async function asViewer(page) {
  phase = "viewer";
  await signIn(page, env("DASH_VIEWER"));
  await go(page, containerPage);
  const logs = page.getByRole("region", { name: "Logs" });
  await logs.locator("div.stdout", { hasText: /^tick \d+$/ }).last().waitFor();
  // Drawn once the page knows the role, where the buttons would be.
  await page.getByText(/read-only: .* \(this one is viewer\)/).waitFor();
  for (const b of ["Start", "Stop", "Restart", "Kill"]) {
    const n = await page.getByRole("button", { name: b, exact: true }).count();
    check(n === 0, `a viewer sees the ${b} button`);
  }
  await page.getByRole("tab", { name: "Events" }).waitFor();
  check((await page.getByRole("tab", { name: "Deploy" }).count()) === 0, "a viewer sees the Deploy tab");
  check((await page.getByRole("form", { name: "Deploy this container" }).count()) === 0, "a viewer sees a deploy form");
  await page.getByRole("tab", { name: "Inspect" }).click();
  const inspect = page.locator("pre.inspect");
  await inspect.filter({ hasText: "DASH_SECRET=<redacted>" }).waitFor();
  check(!(await inspect.textContent()).includes(secret), "the viewer's inspect shows the secret");
  console.log("viewer: no action buttons, no deploy form, inspect redacted");

  // A forged request over the page's own (cookie) WebSocket is refused.
  const reply = await page.evaluate(
    ([server, container, ms]) =>
      new Promise((resolve, reject) => {
        const ws = new WebSocket(`wss://${location.host}/ws`);
        const timer = setTimeout(() => reject(new Error("no reply to the forged restart")), ms);
        ws.onopen = () => ws.send(JSON.stringify({ id: 1, action: "restart", server, payload: { container } }));
        ws.onmessage = (e) => {
          clearTimeout(timer);
          ws.close();
          resolve(JSON.parse(e.data));
        };
        ws.onerror = () => reject(new Error("the forged WebSocket failed"));
      }),
    [agent, tick, WAIT_MS],
  );
  check(reply.type === "error" && reply.data.code === "forbidden", `forged restart: ${JSON.stringify(reply)}`);
  console.log("viewer: a forged restart over the page's WebSocket is forbidden");

  // ANSI colours drawn (not printed), JSON on demand, filter, timestamps.
  await go(page, url(`/agents/${agent}/containers/${env("DASH_COLORS")}`));
  const red = logs.locator("div.stdout span", { hasText: "red alert" });
  await red.waitFor();
  const colour = await red.evaluate((e) => getComputedStyle(e).color);
  check(colour === "rgb(187, 0, 0)", `"red alert" drawn in ${colour}`);
  check((await red.locator("..").textContent()) === "red alert", "the escape codes are shown");
  await page.getByLabel("Pretty JSON").check();
  await logs.locator("div.json", { hasText: '"msg": "json line"' }).waitFor();
  await page.getByLabel("Filter").fill("json line");
  await page.waitForFunction(() => document.querySelectorAll("pre.log > div").length === 1, null, { timeout: WAIT_MS });
  await page.getByLabel("Timestamps").check();
  await logs.locator("span.ts", { hasText: /^\d{4}-\d\d-\d\dT/ }).first().waitFor();
  await page.screenshot({ path: `${shots}/container-logs-json.png`, fullPage: true });
  console.log("logs: ANSI red drawn, JSON indented, filter hides the rest, timestamps shown");

  // Bytes that are not UTF-8: decoded with replacement characters, marked.
  await go(page, url(`/agents/${agent}/containers/${env("DASH_LINES")}`));
  const bytes = logs.locator("div.stderr", { hasText: "binary" }).filter({ has: page.locator("span.badge") });
  await bytes.waitFor();
  check((await bytes.textContent()).includes("\ufffd"), "no replacement character in the binary line");
  await logs.locator("div.stdout", { hasText: /^stdout line 3$/ }).waitFor();
  console.log("logs: a chunk that is not UTF-8 shown with replacement characters, marked");
}

try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  // A CSP violation or a script error fails the test (except what
  // nav.mjs's `expected` lists: the sign-in probe, a network change).
  page.on("console", (m) => {
    if (m.type() === "error" && !expected(m)) problems.push(`${phase}: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`${phase}: ${e}`));
  try {
    await asOperator(page);
    await asViewer(page);
  } catch (e) {
    // What the page showed, to tell why a wait failed.
    await page.screenshot({ path: `${shots}/container-failed.png`, fullPage: true }).catch(() => {});
    const text = await page.locator("main").innerText({ timeout: 1000 }).catch(() => "");
    console.error(`page at ${page.url()} (${phase}):\n${text.slice(0, 4000)}`);
    throw e;
  }
} finally {
  await browser.close();
}
if (problems.length) {
  console.error(`browser errors:\n${problems.join("\n")}`);
  process.exit(1);
}
console.log("container test passed");

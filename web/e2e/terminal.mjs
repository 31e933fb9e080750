// The container page's terminal and the exec sessions player in a real
// browser (Debian's Chromium, driven by playwright-core, whose keyboard is
// CDP's Input.dispatchKeyEvent). Run by tests/tests/dashboard_terminal.rs
// against a hub with an agent; every wait is bounded. Environment:
//   DASH_URL         the hub's dashboard, https://127.0.0.1:PORT/
//   DASH_ADMIN       an admin token
//   DASH_VIEWER      a viewer token
//   DASH_AGENT       the agent's name
//   DASH_CONTAINER   a running container of the fixture image (busybox sh)
//   DASH_SHOTS       a directory for screenshots
import { chromium } from "playwright-core";
import { expected, go } from "./nav.mjs";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const WAIT_MS = 20000;
const shots = env("DASH_SHOTS");
const agent = env("DASH_AGENT");
const container = env("DASH_CONTAINER");
const url = (path) => new URL(path, env("DASH_URL")).href;
const containerPage = url(`/agents/${agent}/containers/${container}`);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox"],
  timeout: WAIT_MS,
});
const problems = [];
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

/** Wait until the terminal's drawn rows (xterm.js's DOM renderer) match. */
async function rowsMatch(region, re, what) {
  const rows = region.locator(".xterm-rows");
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const text = (await rows.innerText()).replace(/\u00a0/g, " ");
    const m = re.exec(text);
    if (m) return m;
    check(Date.now() < deadline, `${what}: not in the terminal:\n${text}`);
    await region.page().waitForTimeout(100);
  }
}

/** Type a line into the focused terminal, key by key, and Enter. */
async function typeLine(page, line) {
  await page.keyboard.type(line);
  await page.keyboard.press("Enter");
}

/** `stty size` in the container equals the rows the page draws. */
async function sizeMatches(page, term, n) {
  await typeLine(page, `echo size${n}-$(stty size | tr ' ' x)-end`);
  const m = await rowsMatch(term, new RegExp(`size${n}-(\\d+)x(\\d+)-end`), `stty size ${n}`);
  const drawn = await term.locator(".xterm-rows > div").count();
  check(Number(m[1]) === drawn, `stty says ${m[1]} rows, the page draws ${drawn}`);
  return { rows: Number(m[1]), cols: Number(m[2]) };
}

async function asAdmin(page) {
  phase = "terminal";
  await signIn(page, env("DASH_ADMIN"));
  await go(page, containerPage);
  await page.getByRole("tab", { name: "Terminal" }).click();
  const term = page.getByRole("region", { name: "Terminal" });
  check((await term.getByLabel("Command").inputValue()) === "sh", "the command is not sh");
  await term.getByRole("button", { name: "Connect" }).click();
  await term.getByRole("status").filter({ hasText: "connected" }).waitFor();
  await rowsMatch(term, /\/ #/, "the shell's prompt");
  // Connect focuses the terminal; click it anyway, as a person would.
  await term.locator(".xterm-screen").click();
  await typeLine(page, "echo hello-$((6*7))");
  await rowsMatch(term, /^hello-42\s*$/m, "hello-42");
  console.log("terminal: typed a command, its output drawn");

  // Resizes reach the TTY: the rows `stty size` reports follow the page.
  const before = await sizeMatches(page, term, 1);
  const vp = page.viewportSize();
  await page.setViewportSize({ width: vp.width - 200, height: vp.height - 240 });
  await page.waitForFunction(
    (n) => document.querySelectorAll(".xterm-rows > div").length !== n,
    before.rows,
    { timeout: WAIT_MS },
  );
  const after = await sizeMatches(page, term, 2);
  check(after.rows < before.rows && after.cols < before.cols, `size ${JSON.stringify(before)} then ${JSON.stringify(after)}`);
  await page.screenshot({ path: `${shots}/container-terminal.png`, fullPage: true });
  console.log(`terminal: resized from ${before.cols}x${before.rows} to ${after.cols}x${after.rows}`);

  await typeLine(page, "exit 3");
  const exit = term.getByTestId("exit");
  await exit.filter({ hasText: "exited with code 3" }).waitFor();
  const session = /session ([^\s)]+)/.exec(await exit.innerText())?.[1];
  check(session, `no session in "${await exit.innerText()}"`);
  console.log(`terminal: exit code 3 shown, session ${session}`);

  // Disconnect: a second shell, cancelled from the page.
  await term.getByRole("button", { name: "Connect" }).click();
  await rowsMatch(term, /\/ #/, "the second shell's prompt");
  await term.getByRole("button", { name: "Disconnect" }).click();
  await term.getByRole("status").filter({ hasText: "disconnected" }).waitFor();
  console.log("terminal: a second shell disconnected");
  return session;
}

async function player(page, session) {
  phase = "player";
  await page.getByRole("link", { name: "Exec sessions" }).click();
  const row = page.locator(`tr[data-session="${session}"]`);
  await row.getByRole("cell", { name: "exit 3" }).waitFor();
  await row.getByRole("cell", { name: "sh", exact: true }).waitFor();
  await row.getByRole("button", { name: /^Play/ }).click();
  const rec = page.getByRole("region", { name: `Recording of ${session}` });
  await rowsMatch(rec, /^hello-42\s*$/m, "hello-42 in the player");
  await rec.getByRole("status").filter({ hasText: /^played/ }).waitFor();
  await page.screenshot({ path: `${shots}/exec-sessions.png`, fullPage: true });
  console.log("player: the recording played, hello-42 in it");

  await rec.getByRole("button", { name: "Restart" }).click();
  await rec.getByRole("status").filter({ hasText: /^paused: 0 of/ }).waitFor();
  check(!/hello-42/.test(await rec.locator(".xterm-rows").innerText()), "hello-42 left after Restart");
  await rec.getByRole("button", { name: "Show all" }).click();
  await rowsMatch(rec, /^hello-42\s*$/m, "hello-42 after Show all");
  await rec.getByRole("status").filter({ hasText: /^played/ }).waitFor();
  console.log("player: Restart cleared it, Show all drew it at once");
}

async function asViewer(page) {
  phase = "viewer";
  await signIn(page, env("DASH_VIEWER"));
  await go(page, containerPage);
  await page.getByText(/read-only: .*terminal.* \(this one is viewer\)/).waitFor();
  check((await page.getByRole("tab", { name: "Terminal" }).count()) === 0, "a viewer sees the Terminal tab");
  check((await page.getByRole("link", { name: "Exec sessions" }).count()) === 0, "a viewer sees Exec sessions");
  console.log("viewer: no Terminal tab, told why; no Exec sessions link");
}

try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  // A CSP violation (xterm.js's styles) or a script error fails the test,
  // except what nav.mjs's `expected` lists (sign-in probe, network change).
  page.on("console", (m) => {
    if (m.type() === "error" && !expected(m)) problems.push(`${phase}: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`${phase}: ${e}`));
  try {
    const session = await asAdmin(page);
    await player(page, session);
    phase = "sign-out";
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("API token").waitFor();
    await asViewer(page);
  } catch (e) {
    await page.screenshot({ path: `${shots}/terminal-failed.png`, fullPage: true }).catch(() => {});
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
console.log("terminal test passed");

// Navigation shared by the browser scripts.

/** `page.goto`, again (twice at most) after a network change: a container
 * starting on a bridge, or one of an earlier test being torn down, adds or
 * removes a veth, and Chromium aborts that moment's navigation with
 * ERR_NETWORK_CHANGED. Any other error is thrown as it came. */
export async function go(page, target) {
  for (let tries = 1; ; tries++) {
    try {
      return await page.goto(target);
    } catch (e) {
      if (tries >= 3 || !String(e).includes("ERR_NETWORK_CHANGED")) throw e;
      await page.waitForTimeout(500);
    }
  }
}

/** Console errors that are not the page's fault: the 401 of GET
 * /api/session that asks whether we are signed in, and a request Chromium
 * aborted with ERR_NETWORK_CHANGED when another test's container added or
 * removed a veth (the page retries; a step it needed would time out). */
export function expected(m) {
  const url = m.location().url;
  if (url.endsWith("/api/session") && m.text().includes("401")) return true;
  if (m.text().includes("ERR_NETWORK_CHANGED")) {
    console.log(`(network changed under ${url || "the page"}; retried by the page)`);
    return true;
  }
  return false;
}

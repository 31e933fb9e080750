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

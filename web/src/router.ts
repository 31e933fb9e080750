// A few lines of history routing: every page has its own URL and the hub
// answers each with index.html (SPA fallback, hub/src/http/web.rs).

import { useEffect, useState } from "preact/hooks";

export function navigate(to: string) {
  if (to === location.pathname) return;
  history.pushState(null, "", to);
  dispatchEvent(new PopStateEvent("popstate"));
}

export function usePath(): string {
  const [path, setPath] = useState(location.pathname);
  useEffect(() => {
    const on = () => setPath(location.pathname);
    addEventListener("popstate", on);
    return () => removeEventListener("popstate", on);
  }, []);
  return path;
}

/** Route parameters of `path`, decoded, or null when it is not such a page. */
export function match(pattern: RegExp, path: string): string[] | null {
  const m = pattern.exec(path);
  return m ? m.slice(1).map(decodeURIComponent) : null;
}

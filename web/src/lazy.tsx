// A component whose module is fetched when it is first drawn: xterm.js
// (terminal.tsx, player.tsx) is about 340 KB of script, which only the
// Terminal tab and the exec sessions page need, so the other pages do not
// load it. Vite puts each dynamic import() in its own hashed chunk.

import { type ComponentType, h } from "preact";
import { useEffect, useState } from "preact/hooks";

export function lazyComponent<P extends object>(load: () => Promise<ComponentType<P>>): ComponentType<P> {
  let loaded: ComponentType<P> | null = null;
  return function Lazy(props: P) {
    const [C, setC] = useState<ComponentType<P> | null>(() => loaded);
    const [error, setError] = useState("");
    useEffect(() => {
      if (C) return;
      let live = true;
      load().then(
        (c) => {
          loaded = c;
          if (live) setC(() => c);
        },
        (e) => live && setError(e instanceof Error ? e.message : String(e)),
      );
      return () => {
        live = false;
      };
    }, []);
    if (error) return <p class="error">could not load this part of the dashboard: {error}</p>;
    return C ? h(C, props) : <p>Loading…</p>;
  };
}

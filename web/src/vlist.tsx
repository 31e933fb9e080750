// A minimal windowed table body: rows of a fixed height in a scroll
// container, only those in view (plus a few) rendered, spacer rows above and
// below keeping the scroll bar true. Heights are set through the CSSOM
// (Preact's style objects), which the page's CSP allows.
import type { ComponentChildren } from "preact";
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";

const OVERSCAN = 8;

export function VirtualTable<T>(props: {
  items: T[];
  rowHeight: number;
  cols: number;
  head: ComponentChildren;
  row: (item: T) => ComponentChildren;
}) {
  const box = useRef<HTMLDivElement>(null);
  const [top, setTop] = useState(0);
  const [height, setHeight] = useState(600);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const measure = () => setHeight(el.clientHeight || 600);
    measure();
    const ro = new ResizeObserver(measure);
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  // The CSS sets the height; the one drawn (borders, zoom) is what counts.
  const [h, setH] = useState(props.rowHeight);
  useLayoutEffect(() => {
    const tr = box.current?.querySelector("tbody tr:not(.spacer)");
    const drawn = tr?.getBoundingClientRect().height;
    if (drawn && Math.abs(drawn - h) > 0.01) setH(drawn);
  });
  const { items } = props;
  const first = Math.max(0, Math.floor(top / h) - OVERSCAN);
  const last = Math.min(items.length, Math.ceil((top + height) / h) + OVERSCAN);
  const spacer = (px: number) =>
    px > 0 && (
      <tr aria-hidden="true" class="spacer" style={{ height: `${px}px` }}>
        <td colSpan={props.cols} />
      </tr>
    );
  return (
    <div class="vlist" ref={box} onScroll={(e) => setTop(e.currentTarget.scrollTop)}>
      <table>
        <thead>{props.head}</thead>
        <tbody>
          {spacer(first * h)}
          {items.slice(first, last).map(props.row)}
          {spacer((items.length - last) * h)}
        </tbody>
      </table>
    </div>
  );
}

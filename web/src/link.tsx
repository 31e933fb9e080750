import type { ComponentChildren } from "preact";
import { navigate } from "./router";

export function Link(props: { href: string; children: ComponentChildren }) {
  return (
    <a
      href={props.href}
      onClick={(e) => {
        if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey) return;
        e.preventDefault();
        navigate(props.href);
      }}
    >
      {props.children}
    </a>
  );
}

export const agentHref = (agent: string) => `/agents/${encodeURIComponent(agent)}`;
export const containerHref = (agent: string, container: string) =>
  `${agentHref(agent)}/containers/${encodeURIComponent(container)}`;

export function ago(when?: string | null): string {
  if (!when) return "never";
  const s = Math.max(0, Math.round((Date.now() - Date.parse(when)) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

export function labelText(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([k, v]) => (v ? `${k}=${v}` : k))
    .join(", ");
}

// What the container and agent pages share: the signed-in role, a
// confirmation dialog, and running one container action.

import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { type Api, ApiError, currentSession } from "./api";

/** The actions these pages offer; all are `operator` in docs/protocol.md. */
export type ContainerAction = "start" | "stop" | "restart" | "kill";

/** The signed-in token's role (null until GET /api/session answered) and
 *  whether it may change containers (operator or admin): the buttons are
 *  only drawn then. The hub checks the role again anyway. */
export function useRole(): { role: string | null; canOperate: boolean } {
  const [role, setRole] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    currentSession().then(
      (s) => live && setRole(s?.role ?? ""),
      () => live && setRole(""),
    );
    return () => {
      live = false;
    };
  }, []);
  return { role, canOperate: role === "operator" || role === "admin" };
}

/** Said where the action buttons would be, once the role is known. */
export function ReadOnly(props: { role: string | null }) {
  if (props.role === null) return null;
  return <p class="muted">read-only: changing containers or opening a terminal in one takes an operator or admin token (this one is {props.role || "unknown"})</p>;
}

/** One action on one container; the message to show, good or bad. */
export async function runAction(
  api: Api,
  server: string,
  action: ContainerAction,
  container: string,
): Promise<{ ok: boolean; message: string }> {
  try {
    await api.call(action, { server }, { container });
    return { ok: true, message: `${action} ${container}: done` };
  } catch (e) {
    const code = e instanceof ApiError ? `${e.code}: ` : "";
    return { ok: false, message: `${action} ${container}: ${code}${e instanceof Error ? e.message : String(e)}` };
  }
}

/** A modal `<dialog>` asking to confirm `question`; `onAnswer(true)` when
 *  confirmed, `onAnswer(false)` when cancelled or closed with Escape. */
export function Confirm(props: {
  question: ComponentChildren;
  confirm: string;
  onAnswer: (yes: boolean) => void;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
  }, []);
  return (
    <dialog ref={ref} class="confirm" aria-label="Confirm" onCancel={() => props.onAnswer(false)}>
      <p>{props.question}</p>
      <div class="buttons">
        <button type="button" onClick={() => props.onAnswer(false)}>
          Cancel
        </button>
        <button type="button" class="danger" onClick={() => props.onAnswer(true)}>
          {props.confirm}
        </button>
      </div>
    </dialog>
  );
}

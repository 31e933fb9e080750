import { useState } from "preact/hooks";
import { signIn } from "./api";

export function SignIn(props: { onSignedIn: () => void }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  return (
    <main class="signin">
      <h1>NextDeploy</h1>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError("");
          try {
            await signIn(token.trim());
            setToken("");
            props.onSignedIn();
          } catch (err) {
            setError(err instanceof Error ? err.message : String(err));
          } finally {
            setBusy(false);
          }
        }}
      >
        <label for="token">API token</label>
        <input
          id="token"
          type="password"
          autocomplete="off"
          value={token}
          onInput={(e) => setToken(e.currentTarget.value)}
        />
        <button type="submit" disabled={busy || !token.trim()}>
          Sign in
        </button>
        {error && <p class="error" role="alert">{error}</p>}
      </form>
    </main>
  );
}

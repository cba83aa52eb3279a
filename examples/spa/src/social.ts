// Social login: the app makes a PKCE pair, keeps the verifier in sessionStorage, and
// navigates to the service's /oauth/start; the browser comes back to /auth/callback
// with #code=… (or #error=…), which completeSocialLogin exchanges with the verifier.
import { client } from "./client";
import * as op from "./operations";

const b64url = (bytes: ArrayBuffer | Uint8Array) =>
  btoa(String.fromCharCode(...new Uint8Array(bytes)))
    .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

export async function startSocialLogin(provider: string): Promise<void> {
  const verifier = b64url(crypto.getRandomValues(new Uint8Array(32)));
  const challenge = b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  sessionStorage.setItem(`pkce:${challenge}`, verifier); // one per flow: tabs do not clash
  sessionStorage.setItem("pkce:last", challenge);
  const r = await client.mutation(op.StartSocialLogin, {
    input: { provider, redirectTo: `${location.origin}/auth/callback`, codeChallenge: challenge },
  });
  if (!r.data) throw new Error(r.error?.message ?? "startSocialLogin failed");
  location.assign(r.data.startSocialLogin.authorizationUrl); // a navigation, not a fetch
}

export async function completeSocialLogin(): Promise<
  { error: string } | { result: Awaited<ReturnType<typeof exchange>> }
> {
  const answer = new URLSearchParams(location.hash.slice(1));
  history.replaceState(null, "", location.pathname); // the code leaves the URL bar
  if (answer.has("error")) return { error: `The provider sign-in failed: ${answer.get("error")}` };
  const challenge = sessionStorage.getItem("pkce:last") ?? "";
  const verifier = sessionStorage.getItem(`pkce:${challenge}`);
  sessionStorage.removeItem(`pkce:${challenge}`);
  if (!answer.get("code") || !verifier) return { error: "No sign-in to finish here." };
  return { result: await exchange(answer.get("code")!, verifier) };
}

const exchange = (code: string, verifier: string) =>
  client.mutation(op.CompleteSocialLogin, { code, verifier });

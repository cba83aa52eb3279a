// The GraphQL client, in cookie mode: the refresh token lives in an HttpOnly cookie
// this code never sees; the access token lives in memory only. See docs/clients.md.
import { Client, CombinedError, fetchExchange } from "@urql/core";
import { authExchange } from "@urql/exchange-auth";
import { persistedExchange } from "@urql/exchange-persisted";

// Same origin: Vite proxies /graphql to the service (vite.config.ts). A separate
// origin works too, once it is listed in the service's CORS_ALLOWED_ORIGINS.
const API_URL = "/graphql";

// Sent with every request: the refresh token goes to a cookie, not the body, and the
// CSRF header lets cookie-authenticated calls (refreshToken, logout) through.
const COOKIE_MODE_HEADERS = { "x-auth-transport": "cookie", "x-csrf-protection": "1" };

let accessToken: string | null = null;
const listeners = new Set<(signedIn: boolean) => void>();

/** Keeps the access token of a fresh AuthPayload (login, verifyMfa, …). */
export function setAccessToken(token: string | null): void {
  const changed = (accessToken === null) !== (token === null);
  accessToken = token;
  if (changed) for (const listener of listeners) listener(token !== null);
}

/** Called on signing in and out; `false` also when a refresh failed (session over). */
export function onSessionChange(listener: (signedIn: boolean) => void): void {
  listeners.add(listener);
}

/**
 * Exchanges the refresh cookie for a new access token (and a new cookie). One refresh
 * at a time across every tab of this origin: the Web Locks API queues the others, so
 * a cookie is never presented after another tab rotated it out of the grace window.
 */
export async function refreshOnce(): Promise<string | null> {
  return navigator.locks.request("identity-refresh", async () => {
    const res = await fetch(API_URL, {
      method: "POST",
      credentials: "include",
      headers: { "content-type": "application/json", ...COOKIE_MODE_HEADERS },
      body: JSON.stringify({ query: "mutation Refresh { refreshToken { accessToken refreshToken } }" }),
    });
    const body = await res.json().catch(() => null);
    return body?.data?.refreshToken?.accessToken ?? null;
  });
}

export const client = new Client({
  url: API_URL,
  // Read the answers fresh each time: sessions and the profile change under us.
  requestPolicy: "network-only",
  preferGetMethod: false,
  fetchOptions: () => ({ credentials: "include", headers: COOKIE_MODE_HEADERS }),
  exchanges: [
    authExchange(async (utils) => ({
      addAuthToOperation: (operation) =>
        accessToken
          ? utils.appendHeaders(operation, { Authorization: `Bearer ${accessToken}` })
          : operation,
      // Refresh, then retry the operation once (authExchange retries it for us).
      didAuthError: (error) => hasCode(error, "UNAUTHENTICATED"),
      refreshAuth: async () => {
        setAccessToken(await refreshOnce());
      },
    })),
    // Automatic persisted queries: a query goes as its SHA-256 alone once the service
    // knows it (the first time, or after PERSISTED_QUERY_NOT_FOUND, with its text), as
    // a GET while the URL stays short. Mutations always go as POST with their text.
    persistedExchange({ preferGetForPersistedQueries: "within-url-limit" }),
    fetchExchange,
  ],
});

/** The `extensions.code` of the first GraphQL error, if any. */
export function errorCode(error: CombinedError | undefined): string | undefined {
  return error?.graphQLErrors[0]?.extensions?.code as string | undefined;
}

export function hasCode(error: CombinedError | undefined, code: string): boolean {
  return !!error?.graphQLErrors.some((e) => e.extensions?.code === code);
}

/** The first error's extensions (`mfaToken`, `fields`, `retryAfter`, …). */
export function extensions(error: CombinedError | undefined): Record<string, unknown> {
  return (error?.graphQLErrors[0]?.extensions ?? {}) as Record<string, unknown>;
}

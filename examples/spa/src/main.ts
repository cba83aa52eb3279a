// The app: one function per screen, a router on location.pathname, and the flows of
// the identity API in cookie mode. Read it top to bottom; see README.md.
import type { CombinedError } from "@urql/core";
import { client, errorCode, extensions, onSessionChange, setAccessToken } from "./client";
import { field, form, h, say } from "./dom";
import * as op from "./operations";
import type { AuthFieldsFragment, MeQuery } from "./gql/graphql";
import { completeSocialLogin, startSocialLogin } from "./social";

const app = document.getElementById("app")!;

// ---------------------------------------------------------------------------------
// Routing: internal links change the URL without a reload; a reload works as well
// (the access token is gone then, and the first call refreshes it from the cookie).

function navigate(path: string): void {
  history.pushState(null, "", path);
  void render();
}
window.onpopstate = () => void render();

function link(path: string, text: string): HTMLAnchorElement {
  return h("a", { href: path, onclick: (e: Event) => (e.preventDefault(), navigate(path)) }, text);
}

const routes: Record<string, () => Promise<void> | void> = {
  "/": home,
  "/register": registerScreen,
  "/verify-email": verifyEmailScreen,
  "/forgot-password": forgotPasswordScreen,
  "/reset-password": resetPasswordScreen,
  "/auth/callback": socialCallbackScreen,
};

async function render(): Promise<void> {
  const screen = routes[location.pathname] ?? home;
  await screen();
}

function page(title: string, ...children: (Node | null)[]): void {
  app.replaceChildren(
    h("h1", {}, title),
    h("p", { id: "message", role: "status" }),
    ...children.filter((c): c is Node => c !== null),
  );
  document.title = `${title} · identity example`;
}

/** What to tell the user about a failed call. */
export function describe(error: CombinedError): string {
  const code = errorCode(error);
  const ext = extensions(error);
  switch (code) {
    case "BAD_USER_INPUT": {
      const fields = (ext.fields ?? {}) as Record<string, string[]>;
      const list = Object.entries(fields).map(([f, msgs]) => `${f}: ${msgs.join(" ")}`);
      return list.length ? list.join("; ") : error.graphQLErrors[0].message;
    }
    case "RATE_LIMITED":
      return `Too many attempts: try again in ${ext.retryAfter} seconds.`;
    case "INVALID_CREDENTIALS":
      return "Wrong email or password.";
    case "INVALID_TOKEN":
      return "This link or code is invalid, expired or already used.";
    case "REAUTHENTICATION_REQUIRED":
      return "Sign in again to do this (your sign-in is older than a few minutes).";
    case undefined:
      return error.networkError ? "The service cannot be reached." : error.message;
    default:
      return `${code}: ${error.graphQLErrors[0].message}`;
  }
}

/** A successful sign-in: keep the access token (the refresh cookie is set already). */
function signedIn(auth: AuthFieldsFragment): void {
  setAccessToken(auth.accessToken);
  navigate("/");
}

// A failed silent refresh (logged out in another tab, session revoked): sign-in screen.
onSessionChange((isSignedIn) => {
  if (!isSignedIn && location.pathname === "/") void render();
});

// ---------------------------------------------------------------------------------
// Signed out: sign in with a password (then maybe a second step), a passkey, or a
// provider.

async function home(): Promise<void> {
  const result = await client.query(op.Me, {});
  if (result.data) return accountScreen(result.data);
  signInScreen();
  if (result.error && errorCode(result.error) !== "UNAUTHENTICATED") say(describe(result.error), "error");
}

function signInScreen(): void {
  const providers = h("div", { id: "providers" });
  page(
    "Sign in",
    form(
      "login",
      [field("Email", "email", "email", { autocomplete: "username" }),
       field("Password", "password", "password", { autocomplete: "current-password" }),
       h("button", { type: "submit" }, "Sign in")],
      async ({ email, password }) => {
        const r = await client.mutation(op.Login, { input: { email, password } });
        if (r.data) return signedIn(r.data.login);
        if (errorCode(r.error) === "MFA_REQUIRED") return mfaScreen(extensions(r.error));
        say(describe(r.error!), "error");
      },
    ),
    h("p", {}, h("button", { id: "passkey-login", onclick: passkeyLogin }, "Sign in with a passkey")),
    providers,
    h("p", {}, link("/register", "Create an account"), " · ", link("/forgot-password", "Forgot your password?")),
  );
  void client.query(op.SocialProviders, {}).then((r) => {
    for (const p of r.data?.socialProviders ?? []) {
      providers.append(
        h("button", { "data-provider": p.id, onclick: () => startSocialLogin(p.id).catch((e) => say(String(e), "error")) },
          `Sign in with ${p.name}`),
      );
    }
  });
}

/** The second step after MFA_REQUIRED: an authenticator code or a recovery code. */
function mfaScreen(ext: Record<string, unknown>): void {
  page(
    "Two-step sign-in",
    h("p", {}, "Enter the 6-digit code from your authenticator app, or a recovery code."),
    form("mfa", [field("Code", "code", "text", { autocomplete: "one-time-code" }), h("button", { type: "submit" }, "Verify")],
      async ({ code }) => {
        const input = /^\d{6}$/.test(code.trim())
          ? { mfaToken: String(ext.mfaToken), totpCode: code.trim() }
          : { mfaToken: String(ext.mfaToken), recoveryCode: code.trim() };
        const r = await client.mutation(op.VerifyMfa, { input });
        if (r.data) return signedIn(r.data.verifyMfa);
        say(describe(r.error!), "error");
      }),
  );
}

async function passkeyLogin(): Promise<void> {
  const begin = await client.mutation(op.BeginPasskeyLogin, {});
  if (!begin.data) return say(describe(begin.error!), "error");
  const { ceremonyId, options } = begin.data.beginPasskeyLogin;
  let credential: PublicKeyCredential;
  try {
    const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(
      (options as { publicKey: PublicKeyCredentialRequestOptionsJSON }).publicKey);
    credential = (await navigator.credentials.get({ publicKey })) as PublicKeyCredential;
  } catch (e) {
    return say(`The passkey prompt was closed (${(e as Error).name}).`, "error");
  }
  const r = await client.mutation(op.FinishPasskeyLogin, { input: { ceremonyId, credential: credential.toJSON() } });
  if (r.data) return signedIn(r.data.finishPasskeyLogin);
  say(describe(r.error!), "error");
}

function registerScreen(): void {
  page(
    "Create an account",
    form(
      "register",
      [field("Email", "email", "email", { autocomplete: "username" }),
       field("Name", "fullName", "text", { autocomplete: "name" }),
       field("Password", "password", "password", { autocomplete: "new-password" }),
       field("Password again", "passwordConfirm", "password", { autocomplete: "new-password" }),
       h("button", { type: "submit" }, "Create the account")],
      async (input) => {
        const r = await client.mutation(op.Register, { input: input as never });
        if (!r.data) return say(describe(r.error!), "error");
        signedIn(r.data.register);
        say(`Welcome! A link to verify ${r.data.register.user.email} is in your mail.`);
      },
    ),
    h("p", {}, link("/", "Back to sign in")),
  );
}

/** The link mailed at sign-up: /verify-email?token=… (EMAIL_VERIFY_URL). */
async function verifyEmailScreen(): Promise<void> {
  page("Verify your email", h("p", {}, link("/", "Continue")));
  const token = new URLSearchParams(location.search).get("token") ?? "";
  const r = await client.mutation(op.VerifyEmail, { token });
  if (r.data?.verifyEmail) say("Your email address is verified.");
  else say(describe(r.error!), "error");
}

function forgotPasswordScreen(): void {
  page(
    "Forgot your password?",
    form("forgot", [field("Email", "email", "email"), h("button", { type: "submit" }, "Mail me a link")],
      async ({ email }) => {
        const r = await client.mutation(op.RequestPasswordReset, { email });
        if (r.data) say("If an account has this address, a link to reset its password is on its way.");
        else say(describe(r.error!), "error");
      }),
    h("p", {}, link("/", "Back to sign in")),
  );
}

/** The link of a reset mail: /reset-password?token=… (PASSWORD_RESET_URL). */
function resetPasswordScreen(): void {
  const token = new URLSearchParams(location.search).get("token") ?? "";
  page(
    "Choose a new password",
    form(
      "reset",
      [field("New password", "newPassword", "password", { autocomplete: "new-password" }),
       field("New password again", "newPasswordConfirm", "password", { autocomplete: "new-password" }),
       h("button", { type: "submit" }, "Set the password")],
      async ({ newPassword, newPasswordConfirm }) => {
        const r = await client.mutation(op.ResetPassword, { input: { token, newPassword, newPasswordConfirm } });
        if (r.data) say("Your password is changed and every session signed out. Sign in with the new one.");
        else say(describe(r.error!), "error");
      },
    ),
    h("p", {}, link("/", "Sign in")),
  );
}

/** Where the provider's round trip ends: /auth/callback#code=… or #error=… */
async function socialCallbackScreen(): Promise<void> {
  page("Signing in…", h("p", {}, link("/", "Back to sign in")));
  const r = await completeSocialLogin();
  if ("error" in r) return say(r.error, "error");
  if (r.result.data) {
    const answer = r.result.data.completeSocialLogin;
    if (answer.__typename === "AuthPayload") return signedIn(answer);
    if (answer.__typename === "AccountLinkRequired") {
      return say(`An account with ${answer.email} exists: sign in to it the usual way, then link ${answer.provider}.`, "error");
    }
  }
  if (errorCode(r.result.error) === "MFA_REQUIRED") return mfaScreen(extensions(r.result.error));
  say(describe(r.result.error!), "error");
}

// ---------------------------------------------------------------------------------
// Signed in: the profile, sessions, password, second factors, passkeys, logout.

function accountScreen(data: MeQuery): void {
  const { me, mfaStatus } = data;
  const sessions = h("tbody", { id: "sessions" });
  const passkeys = h("ul", { id: "passkeys" });
  page(
    `Hello, ${me.fullName}`,
    h("section", { id: "profile" },
      h("p", {}, "Signed in as ", h("strong", { id: "email" }, me.email), " ",
        h("span", { id: "verified", className: me.emailVerified ? "ok" : "warn" },
          me.emailVerified ? "(verified)" : "(not verified: see the link in your mail)")),
      h("p", {}, h("button", { id: "logout", onclick: logout }, "Sign out"))),
    h("section", {},
      h("h2", {}, "Sessions"),
      h("table", {}, h("thead", {}, h("tr", {}, ...["Device", "Since", "Last used", "Assurance", ""].map((t) => h("th", {}, t)))), sessions),
      h("button", { id: "reload-sessions", onclick: () => loadSessions(sessions) }, "Reload")),
    h("section", {}, h("h2", {}, "Change password"), changePasswordForm()),
    h("section", { id: "totp" }, h("h2", {}, "Two-step sign-in"),
      mfaStatus.totpEnabled ? h("p", { id: "totp-on" }, "On: signing in asks for a code from your app.")
        : h("button", { id: "totp-begin", onclick: beginTotp }, "Turn on (authenticator app)")),
    h("section", {}, h("h2", {}, "Passkeys"), passkeys,
      h("button", { id: "passkey-add", onclick: () => addPasskey(passkeys) }, "Add a passkey")),
  );
  void loadSessions(sessions);
  void loadPasskeys(passkeys);
}

async function loadSessions(tbody: HTMLElement): Promise<void> {
  const r = await client.query(op.MySessions, {});
  if (!r.data) return signedOutOr(r.error!);
  tbody.replaceChildren(
    ...r.data.mySessions.map((s) =>
      h("tr", { "data-session": s.id },
        h("td", {}, `${s.browser ?? "?"} on ${s.os ?? "?"}${s.current ? " (this one)" : ""}`),
        h("td", {}, new Date(s.createdAt).toLocaleString()),
        h("td", {}, new Date(s.lastUsedAt).toLocaleString()),
        h("td", {}, `${s.aal} (${s.authMethods.join(", ")})`),
        h("td", {}, s.current ? "" : h("button", {
          className: "revoke",
          onclick: async () => {
            const x = await client.mutation(op.RevokeSession, { id: s.id });
            if (x.error) return signedOutOr(x.error);
            say("Session signed out.");
            await loadSessions(tbody);
          },
        }, "Sign out")))),
  );
}

/** After a call failed: the session may be over (then the sign-in screen). */
function signedOutOr(error: CombinedError): void {
  // The refresh failed already, and onSessionChange showed the sign-in screen.
  if (errorCode(error) === "UNAUTHENTICATED") return setAccessToken(null);
  say(describe(error), "error");
}

function changePasswordForm(): HTMLFormElement {
  return form(
    "change-password",
    [field("Current password", "currentPassword", "password", { autocomplete: "current-password" }),
     field("New password", "newPassword", "password", { autocomplete: "new-password" }),
     field("New password again", "newPasswordConfirm", "password", { autocomplete: "new-password" }),
     h("button", { type: "submit" }, "Change password")],
    async (values, el) => {
      const r = await client.mutation(op.ChangePassword, {
        input: { currentPassword: values.currentPassword, newPassword: values.newPassword, newPasswordConfirm: values.newPasswordConfirm, signOutOtherSessions: true },
      });
      if (r.error) return signedOutOr(r.error);
      setAccessToken(r.data!.changePassword.accessToken); // a new session replaced this one
      el.reset();
      say("Password changed; your other sessions are signed out.");
    },
  );
}

async function beginTotp(): Promise<void> {
  const r = await client.mutation(op.BeginTotp, {});
  if (r.error) return signedOutOr(r.error);
  const e = r.data!.beginTotpEnrollment;
  document.getElementById("totp")!.replaceChildren(
    h("h2", {}, "Two-step sign-in"),
    h("p", {}, "Scan this code with your authenticator app, then enter the code it shows."),
    h("div", { className: "qr", innerHTML: e.qrCodeSvg }),
    h("p", {}, "Or type the key: ", h("code", { id: "totp-secret" }, e.secret)),
    form("totp-confirm", [field("Code", "code", "text", { autocomplete: "one-time-code" }), h("button", { type: "submit" }, "Turn on")],
      async ({ code }) => {
        const c = await client.mutation(op.ConfirmTotp, { id: e.enrollmentId, code: code.trim() });
        if (c.error) return signedOutOr(c.error);
        const { recoveryCodes, auth } = c.data!.confirmTotpEnrollment;
        setAccessToken(auth.accessToken); // the new aal2 session
        document.getElementById("totp")!.replaceChildren(
          h("h2", {}, "Two-step sign-in"),
          h("p", { id: "totp-on" }, "On. Keep these recovery codes somewhere safe; each works once:"),
          h("ul", { id: "recovery-codes" }, ...recoveryCodes.map((rc) => h("li", {}, h("code", {}, rc)))),
        );
      }),
  );
}

async function loadPasskeys(list: HTMLElement): Promise<void> {
  const r = await client.query(op.MyPasskeys, {});
  if (!r.data) return;
  list.replaceChildren(...r.data.myPasskeys.map((p) => h("li", {}, `${p.name} (added ${new Date(p.createdAt).toLocaleDateString()})`)));
}

async function addPasskey(list: HTMLElement): Promise<void> {
  const begin = await client.mutation(op.BeginPasskeyRegistration, {});
  if (begin.error) return signedOutOr(begin.error);
  const { ceremonyId, options } = begin.data!.beginPasskeyRegistration;
  let credential: PublicKeyCredential;
  try {
    const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(
      (options as { publicKey: PublicKeyCredentialCreationOptionsJSON }).publicKey);
    credential = (await navigator.credentials.create({ publicKey })) as PublicKeyCredential;
  } catch (e) {
    return say(`The passkey prompt was closed (${(e as Error).name}).`, "error");
  }
  const r = await client.mutation(op.FinishPasskeyRegistration, { id: ceremonyId, credential: credential.toJSON(), name: "This browser" });
  if (r.error) return signedOutOr(r.error);
  say(`Passkey "${r.data!.finishPasskeyRegistration.name}" added.`);
  await loadPasskeys(list);
}

async function logout(): Promise<void> {
  await client.mutation(op.Logout, {}); // ends the session and clears the cookie
  setAccessToken(null); // onSessionChange shows the sign-in screen
}

void render();

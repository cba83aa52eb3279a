// Every flow of examples/spa in headless Chromium against the real service, in
// cookie mode. Run by scripts/e2e, which prepares the database and the builds.
// Each test fails on a console error, an uncaught exception, a CSP violation, or a
// response body that carries a refresh token.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { after, afterEach, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  APP, browser, foreign, linkFromMail, nextIdToken, serviceLog, setUp, tearDown, totp,
} from './harness.mjs';

const shots = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../examples/spa/screenshots');
mkdirSync(shots, { recursive: true });

const PASSWORD = 'lantern-orchard-42';
const NEW_PASSWORD = 'copper-meadow-97';
let contexts = [];
let problems = [];

before(setUp, { timeout: 120_000 });
after(async () => {
  await tearDown();
  if (/panicked/.test(serviceLog())) throw new Error(`the service panicked:\n${serviceLog()}`);
});
afterEach(async () => {
  for (const context of contexts) await context.close();
  contexts = [];
  const found = problems;
  problems = [];
  assert.deepEqual(found, [], 'console errors, page errors or refresh tokens in bodies');
});

let counter = 0;
const unique = (what) => `${what}-${Date.now()}-${++counter}@example.com`;

/** A browser profile of its own (cookies, storage). */
async function newContext() {
  const context = await browser.newContext({ viewport: { width: 900, height: 820 } });
  contexts.push(context);
  return context;
}

/** Whether a request goes to the API: a POST, or a persisted query as GET /graphql?…. */
const isApi = (request) => new URL(request.url()).pathname === '/graphql';
/** What a request sent: its body, or for a GET its decoded URL. */
const sent = (request) => request.postData() ?? decodeURIComponent(request.url());

/** A tab of the app, watched for console errors and for refresh tokens in bodies. */
async function open(context, where = '/') {
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('response', async (response) => {
    if (!isApi(response.request())) return;
    const body = await response.text().catch(() => '');
    if (/"refreshToken":"/.test(body)) problems.push(`a refresh token in the body of ${response.url()}`);
  });
  await page.goto(`${APP}${where}`);
  return page;
}

const shot = (page, name) => page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
const message = (page) => page.locator('#message');

async function expectSignedIn(page, email) {
  await page.locator('#email').filter({ hasText: email }).waitFor();
}
async function expectSignedOut(page) {
  await page.locator('form#login').waitFor();
}

async function register(page, email, name = 'Ada Lovelace') {
  await page.goto(`${APP}/register`);
  await page.fill('input[name=email]', email);
  await page.fill('input[name=fullName]', name);
  await page.fill('input[name=password]', PASSWORD);
  await page.fill('input[name=passwordConfirm]', PASSWORD);
  await page.click('form#register button');
  await expectSignedIn(page, email);
}

async function login(page, email, password = PASSWORD) {
  await page.fill('form#login input[name=email]', email);
  await page.fill('form#login input[name=password]', password);
  await page.click('form#login button');
}

async function logout(page) {
  await page.click('#logout');
  await expectSignedOut(page);
}

test('register, verify the address from the mail, and read me', async () => {
  const page = await open(await newContext(), '/register');
  const email = unique('ada');
  await shot(page, 'register');
  await register(page, email);
  assert.match(await page.locator('#verified').innerText(), /not verified/);

  const link = await linkFromMail(email, '/verify-email?token=');
  await page.goto(link);
  await message(page).filter({ hasText: 'verified' }).waitFor();
  await shot(page, 'verify-email');
  await page.click('text=Continue');
  await expectSignedIn(page, email);
  assert.equal(await page.locator('#verified').innerText(), '(verified)');
  await page.locator('#sessions tr').first().waitFor();
  await shot(page, 'account');
});

test('the refresh cookie is HttpOnly, and bodies carry no refresh token', async () => {
  const context = await newContext();
  const page = await open(context);
  const email = unique('cookie');
  await register(page, email);
  await page.reload(); // the access token was in memory: a silent refresh from the cookie
  await expectSignedIn(page, email);
  assert.doesNotMatch(await page.evaluate(() => document.cookie), /refresh/);
  const cookie = (await context.cookies()).find((c) => c.name === 'refresh_token');
  assert.ok(cookie, 'the refresh cookie is set');
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, 'Strict');
  assert.equal(cookie.path, '/');
  // (each tab's response watcher fails the test on a refresh token in any body)
});

test('an expired access token is refreshed silently, once, and the call retried', async () => {
  const page = await open(await newContext());
  const email = unique('expiry');
  await register(page, email);
  await page.locator('#sessions tr').first().waitFor();
  const refreshes = [];
  page.on('request', (r) => { if (r.postData()?.includes('refreshToken')) refreshes.push(r.url()); });
  await page.waitForTimeout(9_000); // ACCESS_TOKEN_TTL=3 plus the 5 s leeway
  // The call answers UNAUTHENTICATED, the exchange refreshes, and the retry succeeds.
  const answered = page.waitForResponse(async (r) =>
    sent(r.request()).includes('MySessions') && (await r.text()).includes('"mySessions":['));
  await page.click('#reload-sessions');
  await answered;
  await expectSignedIn(page, email);
  assert.equal(refreshes.length, 1);
  assert.equal(await message(page).innerText(), '');
});

test('login, the session list with revoke, and logout', async () => {
  const email = unique('grace');
  const a = await open(await newContext());
  await register(a, email);
  await logout(a);
  await shot(a, 'sign-in');
  await login(a, email);
  await expectSignedIn(a, email);

  const b = await open(await newContext());
  await login(b, email);
  await expectSignedIn(b, email);

  await a.click('#reload-sessions');
  await a.locator('#sessions tr').nth(1).waitFor();
  assert.equal(await a.locator('#sessions tr').count(), 2);
  await shot(a, 'sessions');
  await a.click('#sessions button.revoke');
  await message(a).filter({ hasText: 'Session signed out' }).waitFor();
  await a.locator('#sessions tr').nth(1).waitFor({ state: 'detached' });

  await b.click('#reload-sessions'); // its next call: the session is gone
  await expectSignedOut(b);

  await logout(a);
  assert.equal((await a.context().cookies()).some((c) => c.name === 'refresh_token'), false);
  await a.reload();
  await expectSignedOut(a);
});

test('signed out, a load settles on the sign-in screen; a wrong password is refused', async () => {
  const context = await newContext();
  const calls = [];
  // Answers, not requests: a persisted query the service does not know yet is sent
  // again with its text, and that pair is one call.
  context.on('response', async (r) => {
    if (!isApi(r.request())) return;
    if (!(await r.text().catch(() => '')).includes('PERSISTED_QUERY_NOT_FOUND')) calls.push(sent(r.request()));
  });
  const page = await open(context);
  await expectSignedOut(page);
  await page.waitForTimeout(1_500);
  // me, a refresh with no cookie, me again, the provider list: then nothing more.
  assert.equal(calls.length, 4, calls.join('\n'));

  const email = unique('wrong');
  await register(page, email);
  await logout(page);
  await login(page, email, 'not-the-password-1');
  await message(page).filter({ hasText: 'Wrong email or password' }).waitFor();
});

test('queries travel as their SHA-256 over GET once the service knows them; mutations as POST', async () => {
  const page = await open(await newContext());
  const email = unique('apq');
  await register(page, email);
  await page.locator('#sessions tr').first().waitFor(); // the list was asked for once
  const requests = [];
  page.on('request', (r) => { if (isApi(r)) requests.push(r); });
  const answered = page.waitForResponse(async (r) =>
    sent(r.request()).includes('MySessions') && (await r.text()).includes('"mySessions":['));
  await page.click('#reload-sessions');
  const response = await answered;
  const url = new URL(response.request().url());
  assert.equal(response.request().method(), 'GET');
  assert.equal(url.searchParams.get('query'), null, 'no query text: the hash alone');
  const persisted = JSON.parse(url.searchParams.get('extensions')).persistedQuery;
  assert.equal(persisted.version, 1);
  assert.match(persisted.sha256Hash, /^[0-9a-f]{64}$/);
  assert.equal(response.headers()['cache-control'], 'no-store');
  await logout(page);
  const mutations = requests.filter((r) => /\bmutation\b|logout/i.test(sent(r)));
  assert.ok(mutations.length > 0);
  for (const r of mutations) assert.equal(r.method(), 'POST', sent(r));
});

test('two tabs refreshing at the same moment both stay signed in', async () => {
  const context = await newContext();
  const one = await open(context);
  const email = unique('tabs');
  await register(one, email);
  const two = await open(context);
  await expectSignedIn(two, email);
  for (let round = 0; round < 3; round++) {
    // Both tabs start with no access token and refresh from the one cookie at once.
    await Promise.all([one.reload(), two.reload()]);
    await Promise.all([expectSignedIn(one, email), expectSignedIn(two, email)]);
  }
  await Promise.all([one.click('#reload-sessions'), two.click('#reload-sessions')]);
  await Promise.all([expectSignedIn(one, email), expectSignedIn(two, email)]);
  await one.locator('#sessions tr').first().waitFor();
  assert.equal(await one.locator('#sessions tr').count(), 1, 'still the one session');
});

test('after logout in one tab, the other is signed out on its next call', async () => {
  const context = await newContext();
  const one = await open(context);
  const email = unique('logout');
  await register(one, email);
  const two = await open(context);
  await expectSignedIn(two, email);
  await logout(one);
  await two.click('#reload-sessions');
  await expectSignedOut(two);
});

test('forgot and reset the password from the mail', async () => {
  const email = unique('reset');
  const page = await open(await newContext());
  await register(page, email);
  await logout(page);
  await page.click('text=Forgot your password?');
  await page.fill('form#forgot input[name=email]', email);
  await page.click('form#forgot button');
  await message(page).filter({ hasText: 'on its way' }).waitFor();
  await shot(page, 'forgot-password');

  await page.goto(await linkFromMail(email, '/reset-password?token='));
  await page.fill('input[name=newPassword]', NEW_PASSWORD);
  await page.fill('input[name=newPasswordConfirm]', NEW_PASSWORD);
  await page.click('form#reset button');
  await message(page).filter({ hasText: 'password is changed' }).waitFor();
  await shot(page, 'reset-password');

  await page.click('a[href="/"]');
  await login(page, email, PASSWORD);
  await message(page).filter({ hasText: 'Wrong email or password' }).waitFor();
  await login(page, email, NEW_PASSWORD);
  await expectSignedIn(page, email);
});

test('change the password', async () => {
  const email = unique('change');
  const page = await open(await newContext());
  await register(page, email);
  await page.fill('form#change-password input[name=currentPassword]', PASSWORD);
  await page.fill('form#change-password input[name=newPassword]', NEW_PASSWORD);
  await page.fill('form#change-password input[name=newPasswordConfirm]', NEW_PASSWORD);
  await page.click('form#change-password button');
  await message(page).filter({ hasText: 'Password changed' }).waitFor();
  await page.reload(); // the new session's cookie refreshes
  await expectSignedIn(page, email);
  await logout(page);
  await login(page, email, PASSWORD);
  await message(page).filter({ hasText: 'Wrong email or password' }).waitFor();
  await login(page, email, NEW_PASSWORD);
  await expectSignedIn(page, email);
});

test('TOTP: turn it on, then sign in with the second step', async () => {
  const email = unique('totp');
  const page = await open(await newContext());
  await register(page, email);
  await page.click('#totp-begin');
  const secret = await page.locator('#totp-secret').innerText();
  await shot(page, 'totp-enrol');
  await page.fill('form#totp-confirm input[name=code]', totp(secret));
  await page.click('form#totp-confirm button');
  await page.locator('#recovery-codes li').nth(9).waitFor();
  await page.reload(); // the aal2 session's cookie
  await expectSignedIn(page, email);
  await page.locator('#totp-on').waitFor();

  await logout(page);
  await login(page, email);
  await page.locator('form#mfa').waitFor();
  await shot(page, 'mfa');
  await page.fill('form#mfa input[name=code]', totp(secret, 1)); // a later step than the enrolment's
  await page.click('form#mfa button');
  await expectSignedIn(page, email);
  await page.locator('#sessions tr').first().filter({ hasText: 'aal2' }).waitFor();
});

test('passkey: add one, then sign in with it (virtual authenticator)', async () => {
  const context = await newContext();
  const page = await open(context);
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2', transport: 'internal', hasResidentKey: true,
      hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true,
    },
  });
  const email = unique('passkey');
  await register(page, email);
  await page.click('#passkey-add');
  await message(page).filter({ hasText: 'added' }).waitFor();
  await page.locator('#passkeys li').first().waitFor();
  await shot(page, 'passkeys');

  await logout(page);
  await page.click('#passkey-login');
  await expectSignedIn(page, email);
  await page.locator('#sessions tr').first().filter({ hasText: 'pop' }).waitFor();
});

test('social login through the OpenID provider', async () => {
  const email = unique('social');
  await nextIdToken({ sub: `e2e-${Date.now()}`, email, email_verified: true, name: 'Sam Social' });
  const page = await open(await newContext());
  await page.click('button[data-provider=idp]');
  await expectSignedIn(page, email);
  assert.equal(new URL(page.url()).pathname, '/');
  assert.equal(new URL(page.url()).hash, '', 'the code left the URL bar');
  await page.locator('#sessions tr').first().filter({ hasText: 'fed' }).waitFor();
  await shot(page, 'social-login');
});

test('a page on another origin can neither refresh nor log out', async () => {
  const context = await newContext();
  const app = await open(context);
  const email = unique('csrf');
  await register(app, email);

  // A page of another origin in the same browser: its credentialed calls are stopped
  // by CORS (the preflight names no allowed origin), and a simple POST gets nowhere.
  const evil = await context.newPage();
  await evil.goto(foreign.url);
  const outcome = await evil.evaluate(async (api) => {
    const results = [];
    for (const query of ['mutation { refreshToken { accessToken } }', 'mutation { logout }']) {
      try {
        const res = await fetch(`${api}/graphql`, {
          method: 'POST', credentials: 'include',
          headers: { 'content-type': 'application/json', 'x-csrf-protection': '1' },
          body: JSON.stringify({ query }),
        });
        results.push(`read ${res.status}`);
      } catch {
        results.push('blocked');
      }
      await fetch(`${api}/graphql`, {
        method: 'POST', mode: 'no-cors', credentials: 'include',
        headers: { 'content-type': 'text/plain' }, body: JSON.stringify({ query }),
      });
    }
    return results;
  }, APP);
  assert.deepEqual(outcome, ['blocked', 'blocked']);

  // The same calls with the cookie and that Origin reach the service: 403 CSRF_REJECTED.
  for (const query of ['mutation { refreshToken { accessToken } }', 'mutation { logout }']) {
    const res = await context.request.post(`${APP}/graphql`, {
      headers: { origin: foreign.url, 'content-type': 'application/json', 'x-csrf-protection': '1' },
      data: { query },
    });
    assert.equal(res.status(), 403);
    assert.match(await res.text(), /CSRF_REJECTED/);
  }
  // Without the CSRF header, even from the app's own origin: refused too.
  const bare = await context.request.post(`${APP}/graphql`, {
    headers: { origin: APP, 'content-type': 'application/json' },
    data: { query: 'mutation { logout }' },
  });
  assert.equal(bare.status(), 403);

  await app.reload(); // the session is intact: the cookie still refreshes
  await expectSignedIn(app, email);
});

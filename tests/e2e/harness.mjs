// Everything the browser tests run against, started by this node process so the
// tests can read the mail and steer the OpenID provider: an SMTP sink, the OpenID
// provider of tests/oidc, the service (IDENTITY_BIN, on the PostgreSQL database and
// Redis prefix scripts/e2e made), the built SPA under `vite preview` on
// http://localhost:3000 proxying /graphql and /oauth to the service, a page on
// another origin, and headless Chromium.
import { spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { createInterface } from 'node:readline';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { simpleParser } from 'mailparser';
import { chromium } from 'playwright-core';
import { SMTPServer } from 'smtp-server';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const APP = 'http://localhost:3000';
const children = [];

function env(name, fallback) {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`${name} is not set (run scripts/e2e)`);
  return value;
}

async function freePort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function waitFor(url, what, child) {
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`${what} exited (${child.exitCode})`);
    try {
      const res = await fetch(url);
      if (res.ok) return;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not answer at ${url}`);
}

function start(command, args, options, name) {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], ...options });
  const log = [];
  const keep = (chunk) => { log.push(chunk.toString()); if (log.length > 2000) log.shift(); };
  child.stderr.on('data', keep);
  if (name !== 'oidc') child.stdout.on('data', keep);
  child.log = log;
  child.name = name;
  children.push(child);
  return child;
}

// ---- mail ------------------------------------------------------------------------

export const mails = [];

async function startSmtp() {
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    logger: false,
    onData(stream, _session, callback) {
      simpleParser(stream).then((mail) => {
        mails.push({ to: mail.to?.text ?? '', subject: mail.subject ?? '', text: mail.text ?? '' });
        callback();
      }, callback);
    },
  });
  const port = await freePort();
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { port, server };
}

/** The newest mail to `to` whose text holds a link of the app starting with `prefix`. */
export async function linkFromMail(to, prefix) {
  const escaped = `${APP}${prefix}`.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const pattern = new RegExp(`${escaped}[^\\s"'<>)]+`);
  for (let i = 0; i < 200; i++) {
    for (const mail of [...mails].reverse()) {
      const match = mail.to.includes(to) && mail.text.match(pattern);
      if (match) return match[0];
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no mail to ${to} with a link to ${prefix}; mails: ${JSON.stringify(mails.map((m) => [m.to, m.subject]))}`);
}

// ---- TOTP (RFC 6238: SHA-1, 6 digits, 30 s) ----------------------------------------

function base32(secret) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of secret.replace(/=+$/, '').toUpperCase()) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}

/** The code of the 30-second step `offset` steps from now. */
export function totp(secret, offset = 0) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 30000) + offset));
  const mac = createHmac('sha1', base32(secret)).update(counter).digest();
  const at = mac[mac.length - 1] & 0xf;
  return String((mac.readUInt32BE(at) & 0x7fffffff) % 1_000_000).padStart(6, '0');
}

// ---- the parties -------------------------------------------------------------------

let oidc;

/** The claims of the next id_token the OpenID provider signs. */
export async function nextIdToken(claims) {
  oidc.stdin.write(`${JSON.stringify({ claims })}\n`);
  const [line] = await oidc.answers.next();
  if (line !== 'ok') throw new Error(`the provider answered ${line}`);
}

async function startOidc() {
  const child = start('node', ['provider.mjs'], { cwd: path.join(root, 'tests/oidc') }, 'oidc');
  const lines = createInterface({ input: child.stdout });
  const iterator = lines[Symbol.asyncIterator]();
  child.answers = { next: async () => [(await iterator.next()).value] };
  const [ready] = await child.answers.next();
  child.issuer = JSON.parse(ready).issuer;
  return child;
}

async function startService(smtpPort, issuer) {
  const port = await freePort();
  const vars = {
    DATABASE_URL: env('E2E_DATABASE_URL'),
    REDIS_URL: env('E2E_REDIS_URL', 'redis://127.0.0.1:6379'),
    REDIS_KEY_PREFIX: env('E2E_REDIS_KEY_PREFIX'),
    SECRET_KEY: randomBytes(48).toString('base64'),
    BIND_ADDR: `127.0.0.1:${port}`,
    RUST_LOG: 'warn',
    // The app's origin is the service's public one: Vite proxies /graphql and /oauth.
    PUBLIC_URL: APP,
    SMTP_URL: `smtp://127.0.0.1:${smtpPort}`,
    MAIL_FROM: 'Identity <no-reply@identity.test>',
    EMAIL_VERIFY_URL: `${APP}/verify-email?token={token}`,
    PASSWORD_RESET_URL: `${APP}/reset-password?token={token}`,
    WEBAUTHN_RP_ID: 'localhost',
    WEBAUTHN_ORIGINS: APP,
    SOCIAL_PROVIDERS: 'idp',
    SOCIAL_REDIRECT_URLS: `${APP}/auth/callback`,
    SOCIAL_ALLOW_INSECURE_HTTP: 'true',
    SOCIAL_IDP_KIND: 'oidc',
    SOCIAL_IDP_NAME: 'Test IdP',
    SOCIAL_IDP_ISSUER: issuer,
    SOCIAL_IDP_CLIENT_ID: 'identity-e2e',
    SOCIAL_IDP_CLIENT_SECRET: 'idp-secret',
    SOCIAL_IDP_TRUST_EMAIL: 'true',
    // Access tokens expire within seconds (plus the service's 5 s leeway), so the
    // silent refresh on UNAUTHENTICATED is exercised in the middle of a session.
    ACCESS_TOKEN_TTL: '3',
    // Every request comes from 127.0.0.1: the per-IP limits would count them all.
    RATE_LIMIT_IP_PER_MINUTE: '100000',
    RATE_LIMIT_RESET_PER_IP_PER_MINUTE: '100000',
    RATE_LIMIT_RESET_TOKEN_PER_IP_PER_MINUTE: '100000',
  };
  const child = start(env('IDENTITY_BIN'), ['serve'], { env: { PATH: process.env.PATH, ...vars } }, 'service');
  await waitFor(`http://127.0.0.1:${port}/readyz`, 'the service', child);
  return `http://127.0.0.1:${port}`;
}

async function startApp(api) {
  const busy = await fetch(`${APP}/`).then(() => true, () => false);
  if (busy) throw new Error(`something already answers on ${APP}: stop it first`);
  const spa = path.join(root, 'examples/spa');
  const child = start('node', [path.join(spa, 'node_modules/vite/bin/vite.js'), 'preview'],
    { cwd: spa, env: { ...process.env, IDENTITY_API: api } }, 'vite');
  await waitFor(`${APP}/`, 'vite preview', child);
}

/** A page on another origin (127.0.0.1, another port) that tries to use the cookie. */
async function startForeignOrigin() {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<!doctype html><title>elsewhere</title><p>another origin</p>');
  });
  const port = await freePort();
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${port}`, server };
}

// An interrupted run leaves nothing behind either.
process.on('exit', () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
});

export let browser;
export let foreign;
let smtp;

export async function setUp() {
  smtp = await startSmtp();
  oidc = await startOidc();
  const api = await startService(smtp.port, oidc.issuer);
  await startApp(api);
  foreign = await startForeignOrigin();
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}

export async function tearDown() {
  await browser?.close();
  foreign?.server.close();
  smtp?.server.close();
  for (const child of children.reverse()) {
    if (child.exitCode === null) {
      if (child.name === 'oidc') child.stdin.end(); else child.kill('SIGTERM');
    }
  }
}

/** The service's log lines (for a failure report, and panics). */
export function serviceLog() {
  return children.find((c) => c.name === 'service')?.log.join('') ?? '';
}

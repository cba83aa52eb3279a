// An OpenID provider on loopback for the social login tests (tests/api/social.rs),
// made of the registry package oauth2-mock-server: discovery, JWKS (RS256), an
// authorization endpoint that signs the user in at once, a token endpoint that checks
// PKCE and puts the authorization request's nonce in the id_token.
//
// Added here: single-use authorization codes (a reused code is `invalid_grant`, as a
// real provider answers), and the claims of the next id_tokens, set by the test on
// stdin, one JSON object per line (each answered "ok" on stdout):
//   {"claims": {"sub": "...", "email": "...", "email_verified": true, "name": "..."},
//    "tamper": {"nonce": "...", "aud": "...", "expired": true}}
// Started with no arguments; prints {"issuer": "http://127.0.0.1:PORT"} when ready.
import { createInterface } from 'node:readline';
import { OAuth2Server } from 'oauth2-mock-server';

const server = new OAuth2Server();
await server.issuer.keys.generate('RS256');
await server.start(0, '127.0.0.1');

let claims = {};
let tamper = {};
const usedCodes = new Set();

server.service.on('beforeTokenSigning', (token) => {
  // The access token carries a scope; the id_token does not.
  if ('scope' in token.payload) return;
  Object.assign(token.payload, claims);
  if (tamper.nonce !== undefined) token.payload.nonce = tamper.nonce;
  if (tamper.aud !== undefined) token.payload.aud = tamper.aud;
  if (tamper.expired) {
    const now = Math.floor(Date.now() / 1000);
    token.payload.iat = now - 7200;
    token.payload.nbf = now - 7200;
    token.payload.exp = now - 3600;
  }
});

server.service.on('beforeResponse', (response, req) => {
  const code = req.body?.code;
  if (req.body?.grant_type !== 'authorization_code' || code === undefined) return;
  if (usedCodes.has(code)) {
    response.statusCode = 400;
    response.body = { error: 'invalid_grant', error_description: 'code already used' };
  }
  usedCodes.add(code);
});

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const command = JSON.parse(line);
  claims = command.claims ?? {};
  tamper = command.tamper ?? {};
  process.stdout.write('ok\n');
});
lines.on('close', async () => {
  await server.stop();
  process.exit(0);
});

process.stdout.write(`${JSON.stringify({ issuer: server.issuer.url })}\n`);

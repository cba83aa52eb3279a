"""The data the cells consume: users registered through the API, sessions written
straight into the database, and the token files wrk's threads read."""

import base64
import concurrent.futures
import hashlib
import hmac
import json
import secrets
import subprocess
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

from .env import (
    PASSKEY_SIGNER_BIN,
    PASSWORD,
    REDIS_HOST,
    REDIS_PORT,
    BenchError,
    log,
    psql,
    run,
)

SEEDED_USERS = 64
# Accounts of their own for the wave-2 cells, so that what those cells do (revoking
# sessions, changing passwords, turning TOTP on) never changes what the first cells
# measure on the 64 seeded users.
LISTING_USERS = 16  # mySessions callers
SEEDED_PER_LISTING = 4  # sessions seeded per listing user, besides the one register made
MFA_USERS = 256  # accounts with TOTP on, for verifyMfa
MFA_TOKEN_TTL_S = 300  # the service's MFA_TOKEN_TTL
# finishPasskeyLogin: accounts with one passkey each, used in turn. A login starts its
# session under a lock on the user's row, and records the use on the passkey's row: with
# one account per passkey and enough of them, the 64 connections seldom queue on a lock
# that real users, each on their own account, would not share.
PASSKEY_USERS = PASSKEYS = 64
TOTP_STEP_S = 30


class Api:
    """A few GraphQL calls from Python, for seeding (not for load: wrk does that)."""

    def __init__(self, base_url: str):
        self.url = base_url + "/graphql"
        # Loopback only: never through an HTTP proxy from the environment.
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def call(self, query: str, variables: dict, bearer: str | None = None,
             extensions: dict | None = None) -> dict:
        payload = {"query": query, "variables": variables}
        if extensions:
            payload["extensions"] = extensions
        headers = {"Content-Type": "application/json"}
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        request = urllib.request.Request(self.url, data=json.dumps(payload).encode(),
                                         method="POST", headers=headers)
        with self.opener.open(request, timeout=60) as response:
            answer = json.load(response)
        if answer.get("errors") or not answer.get("data"):
            raise BenchError(f"GraphQL call failed: {json.dumps(answer)[:500]}")
        return answer["data"]

    def persist(self, query: str, bearer: str) -> None:
        """Persists a query on the server (automatic persisted queries): its text with
        its SHA-256, as a client sends it the first time."""
        digest = hashlib.sha256(query.encode()).hexdigest()
        self.call(query, {}, bearer,
                  {"persistedQuery": {"version": 1, "sha256Hash": digest}})


def refresh_token_pair() -> tuple[str, str]:
    """A refresh token (43 chars of base64url) and what the service stores for it."""
    token = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    digest = hashlib.sha256(token.encode()).digest()
    return token, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sessions_sql(rows: list[str]) -> str:
    """One transaction inserting a session and its refresh token per `user_id,token_hash`
    row (COPY data in the script itself)."""
    return "\n".join([
        "BEGIN;",
        "CREATE TEMP TABLE seed (sid uuid NOT NULL DEFAULT gen_random_uuid(),"
        " user_id uuid NOT NULL, token_hash varchar(64) NOT NULL) ON COMMIT DROP;",
        "COPY seed (user_id, token_hash) FROM STDIN WITH (FORMAT csv);",
        *rows,
        "\\.",
        "INSERT INTO sessions (id, user_id, created_at, expires_at, last_used_at)"
        " SELECT sid, user_id, now(), now() + interval '7 days', now() FROM seed;",
        "INSERT INTO refresh_tokens (id, session_id, token_hash, created_at)"
        " SELECT gen_random_uuid(), sid, token_hash, now() FROM seed;",
        "COMMIT;",
    ]) + "\n"


# After a bulk load, fresh planner statistics: the service's prepared statements are
# otherwise planned against a table tens of thousands of rows smaller than it is. Seen:
# the cookie-mode refresh cell after revokeSession's seeding at 180 req/s instead of
# 1,700, PostgreSQL reading 55,000 rows per request.
ANALYZE_SESSIONS = "ANALYZE sessions; ANALYZE refresh_tokens;\n"
# The service's MAX_SESSIONS_PER_USER (the benchmark keeps the default).
SESSION_BOUND = 100
# Deletes each user's live sessions beyond the newest SESSION_BOUND: what is left of the
# sessions seeded for earlier cells (unused lines, finished rotation chains).
TRIM_SESSIONS_SQL = (
    "DELETE FROM sessions WHERE id IN (SELECT id FROM (SELECT id, row_number() OVER"
    " (PARTITION BY user_id ORDER BY created_at DESC, id DESC) AS n FROM sessions"
    f" WHERE revoked_at IS NULL) AS live WHERE n > {SESSION_BOUND});"
)


def sessions_with_ids_sql(rows: list[str]) -> str:
    """As sessions_sql, for `session_id,user_id,token_hash` rows: the caller chose the
    session ids (revokeSession names the session it ends). Then ANALYZE."""
    return sessions_sql(rows).replace(
        "(sid uuid NOT NULL DEFAULT gen_random_uuid(),", "(sid uuid NOT NULL,").replace(
        "COPY seed (user_id, token_hash)", "COPY seed (sid, user_id, token_hash)"
    ) + ANALYZE_SESSIONS


def recovery_codes_sql(rows: list[str]) -> str:
    """One transaction inserting an unused recovery code per `user_id,code_hash` row."""
    return "\n".join([
        "BEGIN;",
        "CREATE TEMP TABLE seed (user_id uuid NOT NULL, code_hash varchar(64) NOT NULL)"
        " ON COMMIT DROP;",
        "COPY seed (user_id, code_hash) FROM STDIN WITH (FORMAT csv);",
        *rows,
        "\\.",
        "INSERT INTO recovery_codes (id, user_id, code_hash, created_at)"
        " SELECT gen_random_uuid(), user_id, code_hash, now() FROM seed;",
        "COMMIT;",
        "ANALYZE recovery_codes;",  # see ANALYZE_SESSIONS
    ]) + "\n"


def totp_code(secret_base32: str, unix_secs: float) -> str:
    """RFC 6238 as the service checks it (SHA-1, 6 digits, 30 s steps): the code an
    authenticator app would show at `unix_secs`."""
    key = base64.b32decode(secret_base32 + "=" * (-len(secret_base32) % 8))
    mac = hmac.new(key, (int(unix_secs) // TOTP_STEP_S).to_bytes(8, "big"), "sha1").digest()
    offset = mac[-1] & 0x0F
    return f"{(int.from_bytes(mac[offset:offset + 4], 'big') & 0x7FFFFFFF) % 1_000_000:06d}"


def recovery_code() -> tuple[str, str]:
    """A recovery code in the service's shape (16 letters of its alphabet, in groups of
    four) and what it stores for it: the SHA-256 (hex) of the code's letters, lowercased
    (src/security/totp.rs recovery_code_digest)."""
    letters = "".join(secrets.choice("abcdefghjkmnpqrstuvwxyz23456789") for _ in range(16))
    code = "-".join(letters[i:i + 4] for i in range(0, 16, 4))
    return code, hashlib.sha256(letters.encode()).hexdigest()


def opaque_digest(text: str) -> str:
    """What the service keeps in place of an opaque token (opaque_token::digest):
    SHA-256, base64url without padding."""
    return base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()


def resp_command(*args: str) -> str:
    """One Redis command in the protocol `redis-cli --pipe` reads (no quoting issues)."""
    parts = [f"*{len(args)}\r\n"]
    for arg in args:
        parts.append(f"${len(arg.encode())}\r\n{arg}\r\n")
    return "".join(parts)


class PasskeySigner:
    """bench/passkey-signer, one process for the whole benchmark: a software
    authenticator holding the passkeys it created (their private keys never leave it).
    One command a line on its stdin, one answer a line on its stdout (see its main.rs).
    It ends when its stdin closes, so it cannot outlive the harness."""

    def __init__(self):
        if not PASSKEY_SIGNER_BIN.exists():
            raise BenchError(f"{PASSKEY_SIGNER_BIN} is missing (build it, or run without "
                             "--skip-build)")
        self.proc = subprocess.Popen([str(PASSKEY_SIGNER_BIN)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)

    def ask(self, command: str) -> str:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.answer()

    def answer(self) -> str:
        line = self.proc.stdout.readline()
        if not line or line.startswith("error:"):
            raise BenchError(f"passkey-signer: {line.strip() or 'exited'}")
        return line.rstrip("\n")

    def ask_all(self, commands: list[str]) -> list[str]:
        """Many commands at once: written by a second thread while the answers are
        read, so that neither pipe fills up and blocks the other side."""
        def feed() -> None:
            self.proc.stdin.write("".join(c + "\n" for c in commands))
            self.proc.stdin.flush()
        writer = threading.Thread(target=feed, daemon=True)
        writer.start()
        answers = [self.answer() for _ in commands]
        writer.join()
        return answers

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)


@dataclass(frozen=True)
class Account:
    """An account registered for one purpose, with the tokens register gave it."""
    email: str
    user_id: str
    access_token: str
    refresh_token: str


class Seeder:
    """Seeds one benchmark's database and writes the files in its work directory."""

    def __init__(self, api: Api, database: str, stamp: str, workdir: Path,
                 redis_prefix: str = ""):
        self.api = api
        self.database = database
        self.stamp = stamp
        self.workdir = workdir
        self.redis_prefix = redis_prefix
        self.user_emails: list[str] = []
        self.user_ids: list[str] = []
        self.registered = 0  # accounts made by register_accounts, for unique emails
        self.listing_users: list[Account] = []
        self.listing_refresh: list[str] = []  # the current token of each caller's session
        self.mfa_users: list[tuple[str, str]] = []  # (user id, digest of its password hash)
        self.signer: PasskeySigner | None = None  # with PASSKEYS keys, once started
        self.passkey_users: list[Account] = []

    @property
    def users_file(self) -> Path:
        """The seeded users' emails, one a line (their password is PASSWORD)."""
        return self.workdir / "users.txt"

    def register_users(self) -> None:
        """SEEDED_USERS accounts through the register mutation (one argon2 hash each)."""
        self.user_emails = [f"user{i}-{self.stamp}@example.com" for i in range(SEEDED_USERS)]
        query = ("mutation($input: RegisterInput!){ register(input:$input)"
                 "{ accessToken refreshToken } }")

        def register(email: str) -> None:
            self.api.call(query, {"input": {"email": email, "fullName": "Bench User",
                                            "password": PASSWORD, "passwordConfirm": PASSWORD}})

        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(register, self.user_emails))
        rows = psql("SELECT id FROM users WHERE email LIKE 'user%-"
                    f"{self.stamp}@example.com' ORDER BY email", db=self.database)
        self.user_ids = rows.split()
        if len(self.user_ids) != SEEDED_USERS:
            raise BenchError(f"expected {SEEDED_USERS} seeded users, found {len(self.user_ids)}")
        self.users_file.write_text("\n".join(self.user_emails) + "\n")

    def seed_sessions(self, count: int) -> list[str]:
        """`count` live sessions, each with one refresh token, straight into the database
        (logging in would cost an argon2 hash each), then ANALYZE. Returns the tokens."""
        started = time.perf_counter()
        tokens, rows = [], []
        for i in range(count):
            token, token_hash = refresh_token_pair()
            tokens.append(token)
            rows.append(f"{self.user_ids[i % len(self.user_ids)]},{token_hash}")
        psql(sessions_sql(rows) + ANALYZE_SESSIONS, db=self.database, script=True)
        if count >= 1_000:
            log(f"seeded {count} sessions in {time.perf_counter() - started:.1f} s")
        return tokens

    def keep_within_session_bound(self) -> None:
        """Seeding goes straight into the database, past the per-user bound the
        service keeps at each login: left there, a cell's first login of each seeded
        user would end thousands of leftover sessions at once (seen: `me` p99 under the
        login flood 137 ms after the logout cells). Before each cell, the leftovers
        beyond the bound go, as if the users had kept signing in through the API."""
        psql(TRIM_SESSIONS_SQL, db=self.database)

    def write_thread_files(self, name: str, tokens: list[str], per_thread: list[int]) -> Path:
        """Splits tokens into <name>.0, <name>.1, ... (one file per wrk thread)."""
        base, start = self.workdir / name, 0
        for thread, n in enumerate(per_thread):
            Path(f"{base}.{thread}").write_text("\n".join(tokens[start:start + n]) + "\n")
            start += n
        return base

    def access_tokens_file(self) -> Path:
        """Fresh access tokens, one per seeded user (minted by refreshing seeded
        sessions, so they cannot expire during a long run)."""
        query = "mutation($t: String!){ refreshToken(refreshToken:$t){ accessToken } }"
        access = [self.api.call(query, {"t": t})["refreshToken"]["accessToken"]
                  for t in self.seed_sessions(len(self.user_ids))]
        path = self.workdir / "access_tokens.txt"
        path.write_text("\n".join(access) + "\n")
        return path

    # -- wave 2: accounts of their own, sessions by id, second factors --

    def register_accounts(self, label: str, count: int,
                          password: str = PASSWORD) -> list[Account]:
        """`count` new accounts through register (one argon2 hash each), with the
        session register started."""
        query = ("mutation($input: RegisterInput!){ register(input:$input)"
                 "{ accessToken refreshToken user { id } } }")
        emails = [f"{label}{self.registered + i}-{self.stamp}@example.com"
                  for i in range(count)]
        self.registered += count

        def register(email: str) -> Account:
            out = self.api.call(query, {"input": {
                "email": email, "fullName": "Bench User", "password": password,
                "passwordConfirm": password}})["register"]
            return Account(email, out["user"]["id"], out["accessToken"], out["refreshToken"])

        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            return list(pool.map(register, emails))

    def seed_sessions_by_id(self, user_ids: list[str]) -> list[tuple[str, str]]:
        """A live session (with one refresh token) per entry of `user_ids`, straight into
        the database as seed_sessions does; returns (session id, refresh token) pairs."""
        pairs, rows = [], []
        for user_id in user_ids:
            sid = str(uuid.uuid4())
            token, token_hash = refresh_token_pair()
            pairs.append((sid, token))
            rows.append(f"{sid},{user_id},{token_hash}")
        psql(sessions_with_ids_sql(rows), db=self.database, script=True)
        return pairs

    def refresh_all(self, refresh_tokens: list[str]) -> list[tuple[str, str]]:
        """Refreshes each token: (access token, successor refresh token) pairs. The
        session stays live; the old token must not be used again (a rotated token
        presented later revokes its session)."""
        query = ("mutation($t: String!){ refreshToken(refreshToken:$t)"
                 "{ accessToken refreshToken } }")
        out = [self.api.call(query, {"t": t})["refreshToken"] for t in refresh_tokens]
        return [(o["accessToken"], o["refreshToken"]) for o in out]

    def listing_tokens_file(self) -> Path:
        """mySessions: fresh access tokens of the LISTING_USERS accounts, each of which
        has 1 + SEEDED_PER_LISTING live sessions (made once: register's, and seeded
        ones, the first of which the token belongs to), so every answer lists as many."""
        if not self.listing_users:
            self.listing_users = self.register_accounts("sessions", LISTING_USERS)
            seeded = self.seed_sessions_by_id(
                [a.user_id for a in self.listing_users for _ in range(SEEDED_PER_LISTING)])
            self.listing_refresh = [token for _, token in seeded[::SEEDED_PER_LISTING]]
        minted = self.refresh_all(self.listing_refresh)
        self.listing_refresh = [successor for _, successor in minted]
        path = self.workdir / "listing_tokens.txt"
        path.write_text("\n".join(access for access, _ in minted) + "\n")
        return path

    def revoke_targets(self, count: int) -> list[str]:
        """revokeSession: `count` lines `<access token> <session id>`: a live session
        seeded for one of the 64 seeded users, and an access token of another session
        of that user (the caller). Each line ends a different session."""
        callers = self.access_tokens_file().read_text().split()
        owners = [i % len(self.user_ids) for i in range(count)]
        targets = self.seed_sessions_by_id([self.user_ids[u] for u in owners])
        return [f"{callers[u]} {sid}" for u, (sid, _) in zip(owners, targets, strict=True)]

    def password_chains(self, count: int) -> list[str]:
        """changePassword: `count` new accounts (password PASSWORD, aal1), one chain
        each: lines `<access token> <user id>` (the script tells the chains' passwords
        apart by user id)."""
        return [f"{a.access_token} {a.user_id}"
                for a in self.register_accounts("password", count)]

    def enable_mfa_users(self) -> None:
        """MFA_USERS accounts with TOTP on, through the API (register, then
        beginTotpEnrollment and confirmTotpEnrollment with the code of the moment): the
        sealed secret and TOTP row are the service's own. Keeps each user's id and the
        digest of its password hash, which a second step of a login carries."""
        begin = "mutation{ beginTotpEnrollment{ enrollmentId secret } }"
        confirm = ("mutation($e: ID!, $c: String!){ confirmTotpEnrollment(enrollmentId:$e,"
                   " code:$c){ recoveryCodes } }")

        def enrol(account: Account) -> None:
            out = self.api.call(begin, {}, account.access_token)["beginTotpEnrollment"]
            code = totp_code(out["secret"], time.time())
            self.api.call(confirm, {"e": out["enrollmentId"], "c": code}, account.access_token)

        accounts = self.register_accounts("mfa", MFA_USERS)
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(enrol, accounts))
        ids = ",".join(f"'{a.user_id}'" for a in accounts)
        rows = psql(f"SELECT u.id, u.password_hash FROM users u JOIN user_totp t"
                    f" ON t.user_id = u.id WHERE u.id IN ({ids})", db=self.database)
        self.mfa_users = [(uid, opaque_digest(pw_hash))
                          for uid, pw_hash in (line.split("|", 1) for line in rows.split())]
        if len(self.mfa_users) != MFA_USERS:
            raise BenchError(f"expected {MFA_USERS} users with TOTP on, "
                             f"found {len(self.mfa_users)}")

    def seed_mfa_logins(self, count: int) -> list[str]:
        """verifyMfa: `count` lines `<mfaToken> <recovery code>`, spread over the MFA
        users. Each is what a login answering MFA_REQUIRED would leave (the second step,
        in the flow store under the service's key and format, 5 minutes) plus an unused
        recovery code of that user (in recovery_codes, as the SHA-256 the service
        keeps); a login would cost an argon2 hash each."""
        if not self.mfa_users:
            self.enable_mfa_users()
        started = time.perf_counter()
        expires_ms = int((time.time() + MFA_TOKEN_TTL_S) * 1000)
        lines, code_rows, redis = [], [], []
        for i in range(count):
            user_id, credential = self.mfa_users[i % len(self.mfa_users)]
            code, code_hash = recovery_code()
            token = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
            challenge = json.dumps({"user_id": user_id, "amr": ["pwd"],
                                    "credential": credential}, separators=(",", ":"))
            key = f"{self.redis_prefix}flow:mfa:{opaque_digest(token)}"
            redis.append(resp_command("SET", key, f"{expires_ms}:{challenge}",
                                      "PX", str(MFA_TOKEN_TTL_S * 1000)))
            code_rows.append(f"{user_id},{code_hash}")
            lines.append(f"{token} {code}")
        psql(recovery_codes_sql(code_rows), db=self.database, script=True)
        run(["redis-cli", "-h", REDIS_HOST, "-p", str(REDIS_PORT), "--pipe"],
            input="".join(redis))
        log(f"seeded {count} second steps of a login in {time.perf_counter() - started:.1f} s")
        return lines

    def passkey_signer(self) -> PasskeySigner:
        """The signer, with a passkey registered for each of PASSKEY_USERS new accounts
        (through beginPasskeyRegistration / finishPasskeyRegistration on the fresh
        session register gave), each used once, and a login ceremony's options as its
        template."""
        if self.signer:
            return self.signer
        self.signer = PasskeySigner()
        begin = "mutation{ beginPasskeyRegistration{ ceremonyId options } }"
        finish = ("mutation($id: ID!, $c: JSON!){ finishPasskeyRegistration("
                  "ceremonyId:$id, credential:$c, name:\"bench\"){ id } }")
        self.passkey_users = self.register_accounts("passkey", PASSKEY_USERS)
        for account in self.passkey_users:
            ceremony = self.api.call(begin, {}, account.access_token)["beginPasskeyRegistration"]
            credential = self.signer.ask("create " + json.dumps(ceremony["options"]))
            self.api.call(finish, {"id": ceremony["ceremonyId"], "c": json.loads(credential)},
                          account.access_token)
        login = self.api.call("mutation{ beginPasskeyLogin{ options } }", {})
        self.signer.ask("template " + json.dumps(login["beginPasskeyLogin"]["options"]))
        for key in range(PASSKEYS):
            self.first_passkey_login(key)
        return self.signer

    def first_passkey_login(self, key: int) -> None:
        """One login with passkey `key`, alone. Its first use rewrites the stored
        credential (webauthn-rs updates it), and the service records a use only if the
        stored credential is still the one it checked against: first uses racing each
        other would be refused. Later uses with the counter at 0 leave it unchanged, so
        the cell measures those, as a passkey used before would be."""
        begin = "mutation{ beginPasskeyLogin{ ceremonyId options } }"
        finish = ("mutation($i: PasskeyAssertionInput!){ finishPasskeyLogin(input:$i)"
                  "{ accessToken } }")
        ceremony = self.api.call(begin, {})["beginPasskeyLogin"]
        challenge = ceremony["options"]["publicKey"]["challenge"]
        signed = self.signer.ask(f"sign {key} {ceremony['ceremonyId']} {challenge}")
        self.api.call(finish, json.loads(signed))

    def sign_ceremonies(self, ceremonies: list[str]) -> list[str]:
        """An assertion for each `<ceremonyId> <challenge>` line, by the passkeys in
        turn: lines of finishPasskeyLogin variables."""
        signer = self.passkey_signer()
        started = time.perf_counter()
        signed = signer.ask_all([f"sign {i % PASSKEYS} {line}"
                                 for i, line in enumerate(ceremonies)])
        log(f"signed {len(signed)} passkey assertions in "
            f"{time.perf_counter() - started:.1f} s")
        return signed

    def close(self) -> None:
        if self.signer:
            self.signer.close()

    def discard_recovery_codes(self) -> None:
        """Deletes every recovery code of the MFA users, used or not, after a verifyMfa
        run (as regenerating them would): the count of codes left reads all of a user's
        rows, so rows kept from run to run would make each later run slower."""
        if self.mfa_users:
            ids = ",".join(f"'{user_id}'" for user_id, _ in self.mfa_users)
            psql(f"DELETE FROM recovery_codes WHERE user_id IN ({ids});",
                 db=self.database, script=True)

    def end_login_sessions(self) -> None:
        """Ends the live sessions of the MFA and passkey accounts after a run of their
        logins (as signing out everywhere would). Carried over, a user's sessions would
        reach MAX_SESSIONS_PER_USER (100) in later runs, where each login also ends the
        oldest one (a write and a revocation broadcast more): not a typical login."""
        ids = [user_id for user_id, _ in self.mfa_users] + [a.user_id
                                                             for a in self.passkey_users]
        if ids:
            listed = ",".join(f"'{user_id}'" for user_id in ids)
            psql("UPDATE sessions SET revoked_at = now(), revoked_reason = 'logout'"
                 f" WHERE user_id IN ({listed}) AND revoked_at IS NULL;",
                 db=self.database, script=True)

"""The data the cells consume: users registered through the API, sessions written
straight into the database, and the token files wrk's threads read."""

import base64
import concurrent.futures
import hashlib
import json
import secrets
import time
import urllib.request
from pathlib import Path

from .env import PASSWORD, BenchError, log, psql

SEEDED_USERS = 64


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


class Seeder:
    """Seeds one benchmark's database and writes the files in its work directory."""

    def __init__(self, api: Api, database: str, stamp: str, workdir: Path):
        self.api = api
        self.database = database
        self.stamp = stamp
        self.workdir = workdir
        self.user_emails: list[str] = []
        self.user_ids: list[str] = []

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
        (logging in would cost an argon2 hash each). Returns the tokens."""
        started = time.perf_counter()
        tokens, rows = [], []
        for i in range(count):
            token, token_hash = refresh_token_pair()
            tokens.append(token)
            rows.append(f"{self.user_ids[i % len(self.user_ids)]},{token_hash}")
        psql(sessions_sql(rows), db=self.database, script=True)
        if count >= 1_000:
            log(f"seeded {count} sessions in {time.perf_counter() - started:.1f} s")
        return tokens

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

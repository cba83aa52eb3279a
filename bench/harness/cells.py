"""The cells of the table (an operation at a number of connections) and how each is
measured: the data each operation's script needs, the login flood, the hashing
ceiling, and the checkpoint before and the settling after every run."""

import contextlib
import json
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .env import (
    HASH_CEILING_BIN,
    PG_HOST,
    PG_PORT,
    PG_USER,
    BenchError,
    Mode,
    log,
    machine,
    psql,
    run,
)
from .seed import Seeder
from .server import Server
from .wrk import WRK_THREADS, Wrk, WrkResult

CONNECTIONS = (8, 64)
ME_QUERY = "{ me { id email } }"  # of me.lua; me_apq.lua sends its SHA-256
HEALTHZ_CONNECTIONS = 64
FLOOD_LOGIN_CONNECTIONS, FLOOD_ME_CONNECTIONS = 64, 8
# After each run, wait until the server is idle (below IDLE_CPU of one core over
# IDLE_WINDOW_S): work it does off the request path (reset mails) must neither spill
# into the next cell nor go unnoticed. The wait is reported as "busy after".
IDLE_WINDOW_S, IDLE_CPU = 0.25, 0.10
# The database's own write ceiling: pgbench, single-row UPDATE transactions on a table
# of PGBENCH_ROWS rows, at the connections of the refreshToken target.
PGBENCH_CLIENTS, PGBENCH_ROWS, PGBENCH_TABLE = 64, 100_000, "bench_pgbench"
# The cost of shared per-IP limits: these operations at LIMITS_CONNECTIONS, on the
# server with its budgets in Redis and on one with RATE_LIMIT_IP_SHARED=false, back to
# back (the order alternates between runs).
LIMITS_OPERATIONS, LIMITS_CONNECTIONS = ("refreshToken", "login", "logout"), 64
SHARED_LIMITS, LOCAL_LIMITS = "per-IP limits in Redis", "per-IP limits in process"


@dataclass(frozen=True)
class Operation:
    name: str  # as in the table
    script: str  # in bench/
    # How the table relates it to a reference: "hash" (the hashing ceiling), "hash2"
    # (half of it: two argon2 operations a request), "healthz" (the HTTP ceiling), or
    # "x <operation>" (a ratio to that operation's cell at the same connections).
    reference: str = ""
    wave2: bool = False  # a wave-2 operation, which issue 14 wants in the table


OPERATIONS = [
    Operation("register", "register.lua", reference="hash"),
    Operation("login", "login.lua", reference="hash"),
    Operation("me", "me.lua", reference="healthz"),
    Operation("me (persisted query)", "me_apq.lua", reference="healthz"),
    Operation("refreshToken", "refresh.lua"),
    # Right after refreshToken, its reference: the rows the later cells seed would
    # otherwise make the two differ by the database's size, not by the transport.
    Operation("refreshToken (cookie)", "refresh_cookie.lua", reference="x refreshToken",
              wave2=True),
    Operation("logout", "logout.lua"),
    Operation("requestPasswordReset (known)", "reset_known.lua"),
    Operation("requestPasswordReset (unknown)", "reset_unknown.lua"),
    # Wave 2 (after the first cells, but for the cookie-mode refresh; on accounts of
    # their own: see seed.py).
    Operation("mySessions", "my_sessions.lua", reference="healthz",
              wave2=True),
    Operation("revokeSession", "revoke_session.lua", reference="healthz",
              wave2=True),
    Operation("changePassword", "change_password.lua", reference="hash2",
              wave2=True),
    Operation("verifyMfa (recovery code)", "verify_mfa.lua", reference="healthz",
              wave2=True),
    Operation("finishPasskeyLogin", "finish_passkey.lua", reference="healthz",
              wave2=True),
]
# Ceremonies begun for finishPasskeyLogin: connections, and the rate assumed to size
# each wrk run that fetches them.
CEREMONY_CONNECTIONS, CEREMONY_RATE_GUESS = 8, 4_000
# Requests a second assumed for a single-use cell before any of its runs was seen (a
# run that runs out is repeated with more).
SINGLE_USE_RATE_GUESS = 1_500


def select_operations(only: list[str] | None) -> tuple[list[Operation], bool]:
    """--only: the operations (by name, case-insensitive substring) and whether the
    login-flood cell runs; every reference still runs."""
    ops = [op for op in OPERATIONS
           if only is None or any(o.lower() in op.name.lower() for o in only)]
    with_flood = only is None or "flood" in [o.lower() for o in only]
    return ops, with_flood


@dataclass
class Cell:
    operation: str
    conns: int
    runs: list[WrkResult] = field(default_factory=list)

    def median(self, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in self.runs)

    @property
    def errors(self) -> int:  # a total, not a median: every failure counts
        return sum(r.errors for r in self.runs)


def checkpoint() -> None:
    """Flushes PostgreSQL's dirty pages before a cell, so that a checkpoint the
    previous cells' writes made due does not land in the middle of this one (seen:
    refreshToken at 120 req/s instead of 3,000 while the WAL fsyncs queued behind
    one). A benchmark step only: the service's settings are untouched."""
    psql("CHECKPOINT")


def settle(server: Server, limit_s: float) -> float:
    """Waits until the server is idle; returns how long it stayed busy."""
    started = time.perf_counter()
    cpu = server.cpu_seconds()
    while True:
        time.sleep(IDLE_WINDOW_S)
        now = server.cpu_seconds()
        used, cpu = now - cpu, now
        busy = time.perf_counter() - started - IDLE_WINDOW_S
        if used <= IDLE_CPU * IDLE_WINDOW_S:
            return busy
        if busy >= limit_s:
            log(f"the server is still busy {busy:.0f} s after the run: going on")
            return busy


def hash_ceiling(seconds: float) -> dict:
    """One sample of bench/hash-ceiling: argon2id verifies with every core busy."""
    nproc = machine()["nproc"]
    out = run([str(HASH_CEILING_BIN), "--seconds", str(seconds),
               "--threads", str(nproc)]).stdout
    result = json.loads(out.strip().splitlines()[-1])
    log(f"argon2id verify with {nproc} cores busy: {result['mean_verify_ms']:.2f} ms "
        f"-> hashing ceiling {result['ceiling_per_s']:.1f} verifies/s")
    return result


def pgbench_prepare(database: str) -> None:
    """The table pgbench updates, in the benchmark's database (dropped with it)."""
    psql(f"CREATE TABLE {PGBENCH_TABLE} (id int PRIMARY KEY, n bigint NOT NULL DEFAULT 0);\n"
         f"INSERT INTO {PGBENCH_TABLE} (id) SELECT generate_series(1, {PGBENCH_ROWS});\n"
         f"VACUUM ANALYZE {PGBENCH_TABLE};\n", db=database, script=True)


def pgbench_update(database: str, workdir, seconds: int) -> dict:
    """One sample of the database's write ceiling: PGBENCH_CLIENTS clients each
    committing single-row UPDATEs of random rows (pgbench -n: no vacuum first)."""
    script = workdir / "pgbench_update.sql"
    script.write_text(f"\\set id random(1, {PGBENCH_ROWS})\n"
                      f"UPDATE {PGBENCH_TABLE} SET n = n + 1 WHERE id = :id;\n")
    out = run(["pgbench", "-h", PG_HOST, "-p", str(PG_PORT), "-U", PG_USER, "-n",
               "-c", str(PGBENCH_CLIENTS), "-j", str(machine()["nproc"]),
               "-T", str(seconds), "-f", str(script), database]).stdout
    tps = re.search(r"tps = ([0-9.]+)", out)
    if not tps:
        raise BenchError(f"pgbench printed no tps:\n{out[-1000:]}")
    result = {"clients": PGBENCH_CLIENTS, "tps": float(tps.group(1))}
    log(f"pgbench single-row UPDATE, {PGBENCH_CLIENTS} clients: {result['tps']:,.0f} tps")
    return result


def ceiling_figures(samples: list[dict]) -> dict:
    """The hashing ceiling from its samples (one per run): the median verify time."""
    verify_ms = statistics.median(c["mean_verify_ms"] for c in samples)
    threads = samples[0]["threads"]
    return {"threads": threads, "mean_verify_ms": verify_ms,
            "ceiling_per_s": threads * 1e3 / verify_ms, "samples": samples}


class Measurements:
    """Runs the cells against one server and keeps every run of every cell."""

    def __init__(self, mode: Mode, server: Server, wrk: Wrk, seeder: Seeder):
        self.mode = mode
        self.server = server
        self.wrk = wrk
        self.seeder = seeder
        self.cells: dict[tuple[str, int], Cell] = {}
        self.pgbench: list[dict] = []
        self.last_lines: tuple[Path, int] | None = None  # the single-use lines of the last run

    def run_round(self, ops: list[Operation], with_flood: bool, label: str) -> dict:
        """Every cell once, after the hashing ceiling and the database's write ceiling
        (both measured with the server idle); returns the hashing ceiling's sample."""
        self.settle()
        ceiling = hash_ceiling(self.mode.ceiling_seconds)
        checkpoint()
        self.pgbench.append(pgbench_update(self.seeder.database, self.seeder.workdir,
                                           self.mode.cell_seconds))
        self.record("GET /healthz", HEALTHZ_CONNECTIONS,
                    self.wrk.run("healthz.lua", HEALTHZ_CONNECTIONS, self.mode.cell_seconds,
                                 path="/healthz"), label)
        for op in ops:
            for conns in CONNECTIONS:
                self.record(op.name, conns, self.measure(op, conns), label)
        if with_flood:
            self.flood(label)
        self.compare_limits(ops, label, flip=len(self.pgbench) % 2 == 0)
        return ceiling

    def settle(self) -> float:
        return settle(self.server, self.mode.settle_limit_s)

    def record(self, name: str, conns: int, result: WrkResult, label: str) -> None:
        # The server's RSS right after each run, to tell which operation drives the peak.
        result.raw["server_rss_after_mib"] = rss = round(self.server.rss_mib(), 1)
        result.raw["server_rss_anon_after_mib"] = self.server.rss_parts_mib()["anon"]
        result.raw["busy_after_s"] = busy = round(self.settle(), 1)
        self.cells.setdefault((name, conns), Cell(name, conns)).runs.append(result)
        log(f"{label} {name:31} c={conns:<3} {result.summary()}  (server RSS {rss} MiB"
            + (f", busy {busy:.1f} s after the run)" if busy else ")"))

    # -- one cell: each script gets the data it consumes --

    def measure(self, op: Operation, conns: int) -> WrkResult:
        self.seeder.keep_within_session_bound()
        checkpoint()
        how = {
            "login.lua": self.with_users,
            "reset_known.lua": self.with_users,
            "me.lua": self.with_access_tokens,
            "me_apq.lua": self.with_persisted_me,
            "refresh.lua": self.with_rotation_chains,
            "logout.lua": self.with_logout_tokens,
            "my_sessions.lua": self.with_listing_tokens,
            "revoke_session.lua": self.with_revoke_targets,
            "refresh_cookie.lua": self.with_rotation_chains,
            "change_password.lua": self.with_password_chains,
            "verify_mfa.lua": self.with_mfa_logins,
            "finish_passkey.lua": self.with_passkey_assertions,
        }.get(op.script, self.without_data)
        return how(op.script, conns)

    def without_data(self, script: str, conns: int) -> WrkResult:
        return self.wrk.run(script, conns, self.mode.cell_seconds)

    def with_users(self, script: str, conns: int) -> WrkResult:
        return self.wrk.run(script, conns, self.mode.cell_seconds, self.seeder.users_file)

    def with_access_tokens(self, script: str, conns: int) -> WrkResult:
        return self.wrk.run(script, conns, self.mode.cell_seconds,
                            self.seeder.access_tokens_file())

    def with_persisted_me(self, script: str, conns: int) -> WrkResult:
        """me.lua's query, persisted on the server first (its text and SHA-256, the
        APQ registration a client makes once), then sent as the hash alone."""
        tokens = self.seeder.access_tokens_file()
        self.seeder.api.persist(ME_QUERY, tokens.read_text().split()[0])
        return self.wrk.run(script, conns, self.mode.cell_seconds, tokens)

    def with_rotation_chains(self, script: str, conns: int) -> WrkResult:
        # One fresh rotation chain per connection, plus one spare per thread: wrk
        # calls request() once more on thread 0 before the run (to count pipelined
        # requests) and throws that request away, and with it a chain's token.
        per_thread = [conns // WRK_THREADS] * WRK_THREADS  # wrk's split of connections
        chains_per_thread = [n + 1 for n in per_thread]
        tokens = self.seeder.seed_sessions(sum(chains_per_thread))
        return self.wrk.run(script, conns, self.mode.cell_seconds,
                            self.seeder.write_thread_files("chains", tokens, chains_per_thread))

    def with_logout_tokens(self, script: str, conns: int) -> WrkResult:
        """A fresh seeded session's token per logout."""
        return self.with_single_use_lines(script, conns, "logout", "logout",
                                          self.seeder.seed_sessions, "refreshToken")

    # -- shared per-IP limits: the same operations with and without them --

    def compare_limits(self, ops: list[Operation], label: str, flip: bool) -> None:
        """Each of LIMITS_OPERATIONS on this server (budgets in Redis) and, right before
        or after, on a second server with RATE_LIMIT_IP_SHARED=false (same database,
        Redis and key), started for this and stopped after, so that it holds no
        database connections while the other cells run."""
        chosen = [op for op in ops if op.name in LIMITS_OPERATIONS]
        if not chosen:
            return
        local = Server({**self.server.env, "RATE_LIMIT_IP_SHARED": "false"},
                       self.server.workdir)
        local.start()
        try:
            sides = [(SHARED_LIMITS, self.server, self.wrk),
                     (LOCAL_LIMITS, local, Wrk(local.base_url, self.server.workdir))]
            for op in chosen:
                for kind, server, wrk in (sides[::-1] if flip else sides):
                    with self.serving(server, wrk):
                        result = self.measure(op, LIMITS_CONNECTIONS)
                        self.record(f"{op.name} [{kind}]", LIMITS_CONNECTIONS, result, label)
        finally:
            local.stop()

    @contextlib.contextmanager
    def serving(self, server: Server, wrk: Wrk):
        """Measures (and settles) on another server for the duration."""
        saved = self.server, self.wrk
        self.server, self.wrk = server, wrk
        try:
            yield
        finally:
            self.server, self.wrk = saved

    # -- wave 2 --

    def with_listing_tokens(self, script: str, conns: int) -> WrkResult:
        return self.wrk.run(script, conns, self.mode.cell_seconds,
                            self.seeder.listing_tokens_file())

    def chains_per_thread(self, conns: int) -> list[int]:
        """One chain per connection, plus one spare per thread (see
        with_rotation_chains)."""
        return [conns // WRK_THREADS + 1] * WRK_THREADS

    def with_password_chains(self, script: str, conns: int) -> WrkResult:
        per_thread = self.chains_per_thread(conns)
        chains = self.seeder.password_chains(sum(per_thread))
        return self.wrk.run(script, conns, self.mode.cell_seconds,
                            self.seeder.write_thread_files("password", chains, per_thread))

    def with_revoke_targets(self, script: str, conns: int) -> WrkResult:
        result = self.with_single_use_lines(script, conns, "revoke", "revokeSession",
                                            self.seeder.revoke_targets, "logout")
        self.check_revoked(result)
        return result

    def with_mfa_logins(self, script: str, conns: int) -> WrkResult:
        try:
            return self.with_single_use_lines(script, conns, "mfa",
                                              "verifyMfa (recovery code)",
                                              self.seeder.seed_mfa_logins)
        finally:
            self.seeder.discard_recovery_codes()
            self.seeder.end_login_sessions()

    def with_passkey_assertions(self, script: str, conns: int) -> WrkResult:
        try:
            return self.with_single_use_lines(script, conns, "passkey", "finishPasskeyLogin",
                                              self.passkey_assertions)
        finally:
            self.seeder.end_login_sessions()

    def passkey_assertions(self, count: int) -> list[str]:
        """`count` login ceremonies, begun through the API and each signed by one of
        the seeded passkeys."""
        return self.seeder.sign_ceremonies(self.begin_ceremonies(count)[:count])

    def begin_ceremonies(self, count: int) -> list[str]:
        """At least `count` `<ceremonyId> <challenge>` lines of beginPasskeyLogin, fetched
        with wrk (passkey_begin.lua): Python would take a minute for tens of thousands.
        Any failed response stops the benchmark: the cell would run on bad data."""
        base, lines = self.seeder.workdir / "ceremonies", []
        while len(lines) < count:
            seconds = max(1, -(-(count - len(lines)) // CEREMONY_RATE_GUESS))
            result = self.wrk.run("passkey_begin.lua", CEREMONY_CONNECTIONS, seconds, base)
            if result.errors:
                raise BenchError(f"beginPasskeyLogin failed: {result.summary()}")
            for t in range(WRK_THREADS):
                lines += [line for line in Path(f"{base}.{t}").read_text().split("\n") if line]
        log(f"began {len(lines)} passkey login ceremonies")
        return lines

    def with_single_use_lines(self, script: str, conns: int, name: str, op: str,
                              make: Callable[[int], list[str]],
                              like: str | None = None) -> WrkResult:
        """For a script that uses each line of its thread's file once (`make(n)` returns
        n lines): seeded from the rates seen so far (of `op`, else of `like`); a run that
        ran out is repeated with three times as many (at most three tries, then reported
        as errors)."""
        need = self.lines_needed(op, like)
        for _ in range(3):
            n = -(-need // WRK_THREADS)
            files = self.seeder.write_thread_files(name, make(n * WRK_THREADS),
                                                   [n] * WRK_THREADS)
            self.last_lines = files, n
            result = self.wrk.run(script, conns, self.mode.cell_seconds, files)
            if not result.raw["starved"]:
                return result
            need *= 3
            log(f"{op} ran out of its {n * WRK_THREADS} seeded lines: again with {need}")
        return result  # still starved: reported as errors

    def lines_needed(self, op: str, like: str | None) -> int:
        """Twice the best rate seen so far for `op` (else for `like`, else a guess of
        SINGLE_USE_RATE_GUESS) over the run, plus a margin. Seeding far more than a run
        uses would cost time, and for verifyMfa leave each user more unused codes."""
        def best(name: str | None) -> float:
            return max((r.rps for (n, _), c in self.cells.items() if n == name
                        for r in c.runs), default=0.0)
        rate = best(op) or best(like) or SINGLE_USE_RATE_GUESS
        return int(2 * rate * self.mode.cell_seconds) + 2_000

    def check_revoked(self, result: WrkResult) -> None:
        """revokeSession answers true whatever the id: count the seeded sessions that
        really ended, and report any success that ended none as a failure."""
        files, n = self.last_lines
        sids = [line.split()[1] for t in range(WRK_THREADS)
                for line in Path(f"{files}.{t}").read_text().split("\n")[:n] if line]
        ids = ",".join(f"'{sid}'" for sid in sids)
        revoked = int(psql(f"SELECT count(*) FROM sessions WHERE id IN ({ids})"
                           " AND revoked_at IS NOT NULL;", db=self.seeder.database,
                           script=True))  # on stdin: the list is too long for argv
        missing = result.ok - revoked
        log(f"revokeSession: {result.ok} successes, {revoked} sessions revoked")
        if missing > 0:
            result.raw["ok"] -= missing
            result.raw["bad_body"] += missing
            result.raw["first_error"] = (result.raw["first_error"] or
                                         f"{missing} successes revoked no session")

    def flood(self, label: str) -> None:
        """`me` (8 connections) while 64 connections flood login."""
        seconds = self.mode.cell_seconds
        self.seeder.keep_within_session_bound()
        tokens = self.seeder.access_tokens_file()
        checkpoint()
        # Hashing runs at the lowest priority: while `me` takes the cores, logins wait,
        # and those that would wait past their share of the request timeout are shed
        # (RATE_LIMITED, counted apart; the flood measures `me`).
        login = self.wrk.start("login.lua", FLOOD_LOGIN_CONNECTIONS, seconds + 2,
                               self.seeder.users_file, shed_ok=True)
        time.sleep(1)  # the flood is on before `me` starts, and lasts past its end
        me = self.wrk.run("me.lua", FLOOD_ME_CONNECTIONS, seconds, tokens)
        login_result = Wrk.finish(login)
        self.record("flood: me", FLOOD_ME_CONNECTIONS, me, label)
        self.record("flood: login", FLOOD_LOGIN_CONNECTIONS, login_result, label)

"""Settings, and the environment the benchmark runs in.

The settings changed from the service's defaults and the service's whole environment;
the commands the harness runs (psql, redis-cli, cargo) and the checks that they, wrk,
PostgreSQL and Redis work; a description of the machine.
"""

import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# --- The only settings changed from the service's defaults ---------------------------
# All load comes from one address (127.0.0.1), so per-IP and per-account limits would
# turn the benchmark into a rate-limit test. Nothing else is changed: hash parameters,
# pool sizes, timeouts and everything else keep their defaults. Names the service does
# not know (yet) are ignored by it, so setting them is harmless.
RATE_LIMIT_OVERRIDES = {
    "RATE_LIMIT_IP_PER_MINUTE": "1000000000",
    "RATE_LIMIT_RESET_PER_ACCOUNT": "1000000000",
    "RATE_LIMIT_RESET_PER_IP_PER_MINUTE": "1000000000",
    "RATE_LIMIT_RESET_TOKEN_PER_IP_PER_MINUTE": "1000000000",
    "RATE_LIMIT_LOGIN_FAILURES": "1000000000",
    "RATE_LIMIT_LOGIN_ACCOUNT_FAILURES": "1000000000",
    "PASSWORD_HASH_CLIENT_SHARE": "100",
}

REPO = Path(__file__).resolve().parents[2]
BENCH_DIR = REPO / "bench"
SERVER_BIN = REPO / "target" / "release" / "identity"
HASH_CEILING_BIN = REPO / "target" / "release" / "hash-ceiling"
# bench/passkey-signer, where cargo puts it (it honours CARGO_TARGET_DIR, so a checkout
# that shares another's target/ for the service can build this one apart).
PASSKEY_SIGNER_BIN = (Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
                      / "release" / "passkey-signer")

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379

PASSWORD = "correct horse battery"  # of every seeded user


@dataclass(frozen=True)
class Mode:
    name: str
    cell_seconds: int  # wrk -d (whole seconds)
    runs: int  # repetitions of each cell; the table shows medians
    ceiling_seconds: float  # hash_ceiling duration
    settle_limit_s: float  # longest wait for an idle server after a run


FULL = Mode("full", cell_seconds=10, runs=2, ceiling_seconds=5.0, settle_limit_s=120)
QUICK = Mode("quick", cell_seconds=1, runs=1, ceiling_seconds=1.0, settle_limit_s=30)


class BenchError(Exception):
    """A failure of the harness or of its environment (not of a measured request)."""


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Runs a command, capturing its output; raises BenchError naming it on failure."""
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    try:
        proc = subprocess.run(cmd, **kwargs)
    except FileNotFoundError as e:
        raise BenchError(f"{cmd[0]} is not installed") from e
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout or "").strip()[-2000:] or "see its output above"
        raise BenchError(f"`{' '.join(cmd[:4])}` failed (exit {proc.returncode}): {detail}")
    return proc


# --- The service's environment -------------------------------------------------------


def service_env(database: str, redis_prefix: str) -> dict[str, str]:
    """The server's whole environment: nothing is inherited, so that only the
    settings listed here (and RATE_LIMIT_OVERRIDES) differ from the defaults."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        # Loopback to a PostgreSQL on the same machine: no TLS (sslmode=prefer would
        # negotiate it with Debian's default certificate and encrypt every query),
        # as a co-located deployment would connect. A remote database keeps TLS.
        "DATABASE_URL": f"postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"
                        "?sslmode=disable",
        "REDIS_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}",
        "REDIS_KEY_PREFIX": redis_prefix,
        "SECRET_KEY": secrets.token_urlsafe(48),
        "RUST_LOG": "warn",
        **RATE_LIMIT_OVERRIDES,
    }


# --- Tools, services, machine --------------------------------------------------------


def psql(sql: str, db: str = "postgres", script: bool = False) -> str:
    """Runs SQL through psql (unaligned, tuples only). `script`: SQL (with COPY data) on
    stdin."""
    cmd = ["psql", "-h", PG_HOST, "-p", str(PG_PORT), "-U", PG_USER, "-d", db,
           "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
    env = {**os.environ, "PGCONNECT_TIMEOUT": "5"}
    if script:
        return run([*cmd, "-f", "-"], input=sql, env=env).stdout
    return run([*cmd, "-c", sql], env=env).stdout


def redis_cli(*args: str) -> str:
    return run(["redis-cli", "-h", REDIS_HOST, "-p", str(REDIS_PORT), *args]).stdout


def check_services() -> dict[str, str]:
    """Fails with a clear message if PostgreSQL or Redis cannot be reached."""
    try:
        pg_version = psql("SHOW server_version").strip()
    except BenchError as e:
        raise BenchError(
            f"PostgreSQL is not reachable on {PG_HOST}:{PG_PORT} as user {PG_USER} "
            f"(trust auth expected). Start it and retry.\n  {e}") from None
    try:
        pong = redis_cli("ping").strip()
    except BenchError as e:
        pong = str(e)
    if pong != "PONG":
        raise BenchError(f"Redis is not reachable on {REDIS_HOST}:{REDIS_PORT} "
                         f"(redis-cli ping said: {pong!r}). Start it and retry.")
    redis_version = re.search(r"redis_version:(\S+)", redis_cli("info", "server"))
    return {"postgresql": pg_version, "redis": redis_version.group(1) if redis_version else "?"}


def ensure_wrk() -> str:
    """Installs wrk with apt-get if it is missing; returns its version."""
    if not shutil.which("wrk"):
        log("wrk is missing: apt-get install -y wrk")
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        run([*sudo, "apt-get", "install", "-y", "wrk"], capture_output=False)
    if not shutil.which("wrk"):
        raise BenchError("wrk is not installed and apt-get could not install it")
    out = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    version = re.search(r"wrk (\S+)", out.stdout + out.stderr)
    return version.group(1) if version else "?"


def build() -> None:
    log("building: scripts/build-release, bench/hash-ceiling and bench/passkey-signer")
    run([str(REPO / "scripts" / "build-release")], capture_output=False, cwd=REPO)
    run(["cargo", "build", "--locked", "--release", "-p", "hash-ceiling"],
        capture_output=False, cwd=REPO)
    run(["cargo", "build", "--locked", "--release", "-p", "passkey-signer"],
        capture_output=False, cwd=REPO)


def check_binaries() -> None:
    for binary in (SERVER_BIN, HASH_CEILING_BIN):
        if not binary.exists():
            raise BenchError(f"{binary} is missing (build it, or run without --skip-build)")


def machine() -> dict:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "ram_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": os.uname().release,
    }

"""One benchmark from set-up to clean-up: checks and build, a fresh database and Redis
key prefix, the server's start-to-ready time, the cells, and removing everything it
started or created."""

import os
import re
import shutil
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

from .cells import Measurements, ceiling_figures, pgbench_prepare, select_operations
from .env import (
    RATE_LIMIT_OVERRIDES,
    SERVER_BIN,
    Mode,
    build,
    check_binaries,
    check_services,
    ensure_wrk,
    log,
    machine,
    psql,
    redis_cli,
    run,
    service_env,
)
from .report import Results
from .seed import SEEDED_USERS, Api, Seeder
from .server import Server
from .wrk import WRK_THREADS, Wrk, stop_all

START_SAMPLES = 3


class Bench:
    def __init__(self, mode: Mode, keep_workdir: bool, only: list[str] | None = None):
        self.mode = mode
        self.keep_workdir = keep_workdir
        self.stamp = time.strftime("%Y%m%d_%H%M%S") + f"_{os.getpid()}"
        self.database = f"identity_bench_{self.stamp}"
        self.redis_prefix = f"bench:{self.stamp}:"
        self.workdir = Path(tempfile.mkdtemp(prefix=f"identity-bench-{self.stamp}-"))
        self.database_created = False
        self.server: Server | None = None
        self.seeder: Seeder | None = None
        self.failed = True  # until the end is reached
        ops, with_flood = select_operations(only)
        self.results = Results(mode, ops, with_flood, figures={
            "mode": mode.name, "cell_seconds": mode.cell_seconds, "runs": mode.runs,
            "wrk_threads": WRK_THREADS})

    @property
    def figures(self) -> dict:
        return self.results.figures

    def execute(self, skip_build: bool) -> None:
        self.prepare(skip_build)
        env = self.create_database()
        self.measure_start(env)
        ceilings = self.measure_cells()
        self.finish(ceilings)
        self.failed = False

    # -- set-up --

    def prepare(self, skip_build: bool) -> None:
        mode = self.mode
        log(f"{mode.name} mode: {mode.runs} run(s) x {mode.cell_seconds} s per cell")
        self.figures["machine"] = machine()
        self.figures["versions"] = {"wrk": ensure_wrk(), **check_services()}
        if not skip_build:
            build()
        check_binaries()

    def create_database(self) -> dict[str, str]:
        """A fresh database, migrated once; every start finds it up to date. Returns the
        service's environment."""
        psql(f'CREATE DATABASE "{self.database}"')
        self.database_created = True
        env = service_env(self.database, self.redis_prefix)
        run([str(SERVER_BIN), "migrate"], env=env, cwd=self.workdir)
        config = run([str(SERVER_BIN), "check-config"], env=env, cwd=self.workdir).stdout
        effective = dict(line.split("=", 1) for line in config.splitlines() if "=" in line)
        self.figures["settings_changed"] = RATE_LIMIT_OVERRIDES
        self.figures["overrides_recognised"] = [k for k in RATE_LIMIT_OVERRIDES
                                                if k in effective]
        shown = ("ARGON2_", "PASSWORD_HASH", "DATABASE_MAX")  # what the figures depend on
        self.figures["service_settings"] = {k: v for k, v in effective.items()
                                            if k.startswith(shown)}
        log(f"database {self.database}, Redis prefix {self.redis_prefix}, "
            f"work directory {self.workdir}")
        return env

    def measure_start(self, env: dict[str, str]) -> None:
        """Start to ready, with migrations applied: START_SAMPLES starts; the last stays
        up for the cells."""
        self.server = Server(env, self.workdir)
        starts = []
        for i in range(START_SAMPLES):
            starts.append(self.server.start())
            log(f"start to ready #{i + 1}: {starts[-1] * 1e3:.1f} ms")
            if i < START_SAMPLES - 1:
                self.server.stop()
        self.figures["start_to_ready_ms"] = [round(s * 1e3, 1) for s in starts]
        time.sleep(0.5)
        self.figures["rss_idle_mib"] = round(self.server.rss_mib(), 1)
        self.figures["rss_idle_parts_mib"] = self.server.rss_parts_mib()
        log(f"server pid {self.server.pid} on {self.server.base_url}, idle RSS "
            f"{self.figures['rss_idle_mib']} MiB")

    # -- measuring --

    def measure_cells(self) -> list[dict]:
        """Seeds the users, then runs every cell; returns the hashing ceiling's samples.
        Runs are interleaved (every cell once, then again) so that noise from the rest
        of the machine spreads over all cells rather than hitting one."""
        api = Api(self.server.base_url)
        seeder = self.seeder = Seeder(api, self.database, self.stamp, self.workdir,
                                      self.redis_prefix)
        log(f"registering {SEEDED_USERS} users")
        seeder.register_users()
        pgbench_prepare(self.database)
        measurements = Measurements(self.mode, self.server,
                                    Wrk(self.server.base_url, self.workdir), seeder)
        self.results.cells = measurements.cells
        res = self.results
        ceilings = [measurements.run_round(res.ops, res.with_flood,
                                           f"[run {rep + 1}/{self.mode.runs}]")
                    for rep in range(self.mode.runs)]
        self.figures["pgbench"] = {
            "clients": measurements.pgbench[0]["clients"],
            "tps": statistics.median(p["tps"] for p in measurements.pgbench),
            "samples": measurements.pgbench}
        return ceilings

    def finish(self, ceilings: list[dict]) -> None:
        """The figures known once every cell ran: the hashing ceiling, the peak RSS, and
        the problems in the server's log (read after it stopped)."""
        self.figures["hash"] = ceiling_figures(ceilings)
        self.figures["rss_peak_mib"] = round(self.server.peak_rss_mib(), 1)
        self.server.stop()
        problems = self.server.log_problems()
        self.figures["server_log_problems"] = {
            "count": len(problems),
            "by_message": Counter(re.sub(r"^\S+\s+", "", p)[:300] for p in problems),
            "first": problems[:50],
        }

    # -- clean-up --

    def cleanup(self) -> None:
        """Stops and removes everything this run started or created. Never raises."""
        stop_all()
        steps = []
        if self.seeder:
            steps.append(("stop the passkey signer", self.seeder.close))
        if self.server:
            steps.append(("stop the server", self.server.stop))
        if self.database_created:
            steps.append(("drop the database", lambda: psql(
                f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')))
        steps.append(("delete the Redis keys", self.delete_redis_keys))
        for what, step in steps:
            try:
                step()
            except Exception as e:  # clean up as much as possible, whatever failed
                log(f"clean-up: could not {what}: {e}")
        if (self.failed and self.server) or self.keep_workdir:
            log(f"work directory kept (server log, seeded tokens): {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def delete_redis_keys(self) -> None:
        keys = redis_cli("--scan", "--pattern", self.redis_prefix + "*").split()
        for i in range(0, len(keys), 500):
            redis_cli("unlink", *keys[i:i + 500])
        self.figures["redis_keys_deleted"] = len(keys)

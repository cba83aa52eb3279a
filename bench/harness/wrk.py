"""One wrk run: wrk with one of the Lua scripts in bench/, and what it measured.

Every response is checked by the Lua script (status 200, no "errors", the expected
data); its done() prints one BENCH_RESULT line of JSON, parsed into a WrkResult.
"""

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .env import BENCH_DIR, PASSWORD, BenchError

WRK_THREADS = 2
WRK_TIMEOUT = "10s"  # well above any expected latency: a timeout is an error

# Every wrk process running, so that clean-up can stop them whatever happened.
LIVE_WRK: set[subprocess.Popen] = set()


def stop_all() -> None:
    """Kills every wrk still running."""
    for proc in list(LIVE_WRK):
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@dataclass
class WrkResult:
    raw: dict

    @property
    def seconds(self) -> float:
        return self.raw["duration_us"] / 1e6

    @property
    def ok(self) -> int:
        return self.raw["ok"]

    @property
    def rps(self) -> float:
        """Checked successes per second: failures are not throughput."""
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def p50_ms(self) -> float:
        return self.raw["p50_us"] / 1e3

    @property
    def p99_ms(self) -> float:
        return self.raw["p99_us"] / 1e3

    @property
    def busy_after_s(self) -> float:
        """How long the server stayed busy after the run (set by Measurements.record)."""
        return self.raw.get("busy_after_s", 0.0)

    @property
    def shed(self) -> int:
        """RATE_LIMITED answers where the run said they are expected (BENCH_SHED_OK):
        the service's answer to overload, neither throughput nor a failure."""
        return self.raw.get("shed", 0)

    @property
    def unchecked(self) -> int:
        """Responses wrk counted that the script's check did not see (should be 0)."""
        r = self.raw
        return max(0, r["requests"] - r["ok"] - r["bad_status"] - r["bad_body"] - self.shed)

    @property
    def errors(self) -> int:
        r = self.raw
        return (r["bad_status"] + r["bad_body"] + r["connect_errors"] + r["read_errors"]
                + r["write_errors"] + r["timeouts"] + self.unchecked)

    def summary(self) -> str:
        s = (f"{self.rps:10.1f} req/s  p50 {self.p50_ms:8.2f} ms  p99 {self.p99_ms:8.2f} ms"
             f"  ok {self.ok}  errors {self.errors}")
        if self.shed:
            s += f"  shed {self.shed}"
        if self.errors:
            r = self.raw
            s += (f" (status {r['bad_status']}, body {r['bad_body']}, starved {r['starved']},"
                  f" socket {r['connect_errors']}/{r['read_errors']}/{r['write_errors']},"
                  f" timeouts {r['timeouts']}, unchecked {self.unchecked};"
                  f" per thread {r['threads']}; first: {r['first_error']})")
        return s


class Wrk:
    """wrk with one of the bench/ scripts; parses the BENCH_RESULT line of done()."""

    def __init__(self, base_url: str, workdir: Path):
        self.base_url = base_url
        self.workdir = workdir
        self.tag = 0

    def command(self, script: str, conns: int, seconds: int, path: str) -> list[str]:
        return ["wrk", f"-t{WRK_THREADS}", f"-c{conns}", f"-d{seconds}s",
                "--timeout", WRK_TIMEOUT, "-s", str(BENCH_DIR / script), self.base_url + path]

    def env(self, data_file: Path | None) -> dict[str, str]:
        self.tag += 1
        env = {**os.environ, "BENCH_PASSWORD": PASSWORD,
               "BENCH_TAG": f"{self.workdir.name}-{self.tag}"}
        if data_file:
            env["BENCH_FILE"] = str(data_file)
        return env

    def start(self, script: str, conns: int, seconds: int, data_file: Path | None = None,
              path: str = "/graphql", shed_ok: bool = False) -> subprocess.Popen:
        env = self.env(data_file)
        if shed_ok:
            env["BENCH_SHED_OK"] = "1"
        proc = subprocess.Popen(self.command(script, conns, seconds, path),
                                env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=self.workdir)
        LIVE_WRK.add(proc)
        return proc

    @staticmethod
    def finish(proc: subprocess.Popen) -> WrkResult:
        out, err = proc.communicate()
        LIVE_WRK.discard(proc)
        for line in out.splitlines():
            if line.startswith("BENCH_RESULT "):
                if proc.returncode != 0:
                    break
                return WrkResult(json.loads(line.removeprefix("BENCH_RESULT ")))
        raise BenchError(f"wrk failed ({proc.returncode}):\n{out[-2000:]}\n{err[-2000:]}")

    def run(self, script: str, conns: int, seconds: int, data_file: Path | None = None,
            path: str = "/graphql") -> WrkResult:
        return self.finish(self.start(script, conns, seconds, data_file, path))

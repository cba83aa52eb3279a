"""The service under test: target/release/identity serve, started and stopped, its
log, and its memory and CPU time read from /proc."""

import http.client
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

from .env import SERVER_BIN, BenchError, log

READY_POLL_S = 0.002
READY_TIMEOUT_S = 30
STOP_TIMEOUT_S = 15


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status_mib(pid: int, field_name: str) -> float:
    """VmRSS / VmHWM of a process, in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"{field_name}:\s+(\d+) kB", status).group(1)) / 1024


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


class Server:
    """target/release/identity serve, with its log in the work directory."""

    def __init__(self, env: dict[str, str], workdir: Path):
        self.env = env
        self.workdir = workdir
        self.log_path = workdir / "server.log"
        self.proc: subprocess.Popen | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def start(self) -> float:
        """Spawns the server and waits until /readyz answers 200; returns the seconds
        from spawn to ready. The one place the harness starts the service."""
        self.port = free_port()
        env = {**self.env, "BIND_ADDR": f"127.0.0.1:{self.port}"}
        with open(self.log_path, "a") as log_file:
            started = time.perf_counter()
            self.proc = subprocess.Popen([str(SERVER_BIN), "serve"], env=env, cwd=self.workdir,
                                         stdout=log_file, stderr=subprocess.STDOUT)
        deadline = started + READY_TIMEOUT_S
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"the server exited ({self.proc.returncode}) before it was "
                                 f"ready:\n{self.log_tail()}")
            if self.readyz_status() == 200:
                return time.perf_counter() - started
            time.sleep(READY_POLL_S)
        raise BenchError(f"the server was not ready after {READY_TIMEOUT_S} s:\n"
                         f"{self.log_tail()}")

    def readyz_status(self) -> int | None:
        """The status of one GET /readyz; None while the server is not listening."""
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            try:
                conn.request("GET", "/readyz")
                return conn.getresponse().status
            finally:
                conn.close()
        except OSError:
            return None  # not listening yet

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log(f"the server did not stop within {STOP_TIMEOUT_S} s of SIGTERM: killing it")
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def rss_mib(self) -> float:
        return proc_status_mib(self.pid, "VmRSS")

    def rss_parts_mib(self) -> dict[str, float]:
        """RSS split into private memory (anonymous) and mapped files (the executable's
        code and data pages, shared with the page cache and reclaimable)."""
        return {"anon": round(proc_status_mib(self.pid, "RssAnon"), 1),
                "file": round(proc_status_mib(self.pid, "RssFile"), 1)}

    def peak_rss_mib(self) -> float:
        return proc_status_mib(self.pid, "VmHWM")

    def cpu_seconds(self) -> float:
        return proc_cpu_seconds(self.pid)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def log_problems(self) -> list[str]:
        """WARN and ERROR lines of the server log (RUST_LOG=warn keeps only those)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        text = re.sub(r"\x1b\[[0-9;]*m", "", text)
        return [line.strip() for line in text.splitlines()
                if re.search(r"\b(WARN|ERROR)\b", line)]

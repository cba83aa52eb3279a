"""What a benchmark reports: the Markdown table, the targets met or missed, and the
JSON report with every figure and every run."""

import statistics
from dataclasses import dataclass, field

from .cells import (
    CONNECTIONS,
    FLOOD_LOGIN_CONNECTIONS,
    FLOOD_ME_CONNECTIONS,
    HEALTHZ_CONNECTIONS,
    LIMITS_CONNECTIONS,
    LIMITS_OPERATIONS,
    LOCAL_LIMITS,
    SHARED_LIMITS,
    Cell,
    Operation,
)
from .env import Mode
from .wrk import WRK_THREADS

# The targets of issue 14, checked in the table (informative: they never fail the
# command). Ratios compare figures of the same run, so they hold on any machine.
TARGETS = {
    "me_healthz_ratio": 0.5,
    "refresh_pgbench_ratio": 0.4,
    "hash_share_pct": 95.0,
    "reset_p50_gap_pct": 10.0,
    "flood_me_p99_ms": 10.0,  # in every run: the worst run counts
    "rss_idle_mib": 20.0,
    "rss_peak_mib": 80.0,
    "start_ms": 100.0,
    "limits_cost_pct": 5.0,
}

# Why a target is missed, as far as it has been investigated (BENCHMARKS.md has the
# profiles); printed beside a missed target only.
MISS_REASONS = {
    "me_healthz_ratio": "no single hotspot: a perf profile of the me cells puts 30 % of the "
                        "server's CPU in the kernel (TCP, scheduling), 7 % in libc, and "
                        "the rest spread over async-graphql, hyper/http, serde_json and "
                        "the JWT check; a me costs about 3x a /healthz request",
    "refresh_pgbench_ratio": "a rotation writes three rows in one transaction (the old "
                             "token, its successor, the session) and their indexes, "
                             "pgbench one; and the service shares the cores with "
                             "PostgreSQL",
    "hash_share_pct": "a verify takes longer inside the service than in the ceiling tool, "
                      "which runs alone: wrk, PostgreSQL and the runtime share the caches "
                      "and memory bandwidth argon2's 19 MiB depend on",
    "reset_p50_gap_pct": "a known address costs work after the answer (token, Redis, "
                         "outbox row, delivery) on the same saturated cores; the request "
                         "path is the same for both",
    "flood_me_p99_ms": "alone the flood holds (5-7 ms) since a sign-in keeps the profile "
                       "in memory; after the logout and revokeSession cells me's p99 "
                       "reads 8-10 ms, with no lapse, no profile read and no autovacuum "
                       "running: close to the line, and what is left is not found yet",
    "rss_idle_mib": "most of it is the executable's own code pages (mapped from the "
                    "file, shared and reclaimable, see the reference row); private "
                    "memory is far below the target",
    "rss_peak_mib": "the login flood's two argon2 workspaces (2 x 19 MiB) on top of "
                    "the private memory the process holds after the earlier cells "
                    "(caches, pools, allocator), plus ~21 MiB of mapped code",
    "limits_cost_pct": "a Redis round trip per round of a client's waiting checks, on the "
                       "same two cores",
}

KNOWN, UNKNOWN = "requestPasswordReset (known)", "requestPasswordReset (unknown)"


@dataclass
class Results:
    """Everything one benchmark measured. `figures` becomes the JSON report (in the order
    its entries were set), with the cells and targets added."""

    mode: Mode
    ops: list[Operation]
    with_flood: bool
    figures: dict
    cells: dict[tuple[str, int], Cell] = field(default_factory=dict)

    @property
    def total_errors(self) -> int:
        return sum(c.errors for c in self.cells.values())

    @property
    def hash_ceiling(self) -> float:
        return self.figures["hash"]["ceiling_per_s"]

    @property
    def starts(self) -> list[float]:
        return self.figures["start_to_ready_ms"]


# --- The Markdown table ----------------------------------------------------------------


def table(res: Results) -> str:
    lines = [*header_lines(res), *operation_rows(res), *limits_rows(res), "",
             *reference_rows(res), "", *target_rows(res), *failure_lines(res),
             *log_problem_lines(res)]
    return "\n".join(lines)


def header_lines(res: Results) -> list[str]:
    r, m, mode = res.figures, res.figures["machine"], res.mode
    return [
        f"## identity benchmark ({mode.name}: median of {mode.runs} run(s) "
        f"x {mode.cell_seconds} s per cell, wrk -t{WRK_THREADS})",
        "",
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['ram_gib']} GiB RAM, Linux "
        f"{m['kernel']}; wrk {r['versions']['wrk']}, PostgreSQL "
        f"{r['versions']['postgresql']}, Redis {r['versions']['redis']}. Load generator "
        "and service share the machine.",
        "",
        "Settings changed from the defaults (all load comes from 127.0.0.1): "
        + ", ".join(f"`{k}={v}`" for k, v in r["settings_changed"].items())
        + f" (recognised by this build: {', '.join(r['overrides_recognised']) or 'none'})."
        " Service settings in effect: "
        + ", ".join(f"`{k}={v}`" for k, v in r["service_settings"].items()) + ".",
        "",
        "| operation | conns | req/s | p50 ms | p99 ms | errors | relative to | busy after |",
        "|---|---:|---:|---:|---:|---:|---|---:|",
    ]


def operation_rows(res: Results) -> list[str]:
    healthz_rps = res.cells[("GET /healthz", HEALTHZ_CONNECTIONS)].median("rps")
    rows = []
    for op in res.ops:
        for conns in CONNECTIONS:
            cell = res.cells[(op.name, conns)]
            rps = cell.median("rps")
            relative = relative_to(res, op.reference, conns, rps, healthz_rps)
            busy = cell.median("busy_after_s")
            rows.append(f"| {op.name} | {conns} | {rps:,.0f} | {cell.median('p50_ms'):.2f} "
                        f"| {cell.median('p99_ms'):.2f} | {cell.errors} | {relative} "
                        f"| {f'{busy:.1f} s' if busy >= 1 else ''} |")
    return rows


def relative_to(res: Results, reference: str, conns: int, rps: float,
                healthz_rps: float) -> str:
    """The "relative to" column of one cell (see Operation.reference)."""
    if reference == "hash":
        return f"{100 * rps / res.hash_ceiling:.0f} % of the hashing ceiling"
    if reference == "hash2":  # two argon2 operations a request
        return f"{100 * rps / (res.hash_ceiling / 2):.0f} % of half the hashing ceiling"
    if reference == "healthz":
        return f"{rps / healthz_rps:.2f} x GET /healthz"
    if reference.startswith("x ") and (other := res.cells.get((reference[2:], conns))):
        return f"{rps / other.median('rps'):.2f} x {reference[2:]}"
    return ""


def reference_rows(res: Results) -> list[str]:
    r, starts = res.figures, res.starts
    healthz = res.cells[("GET /healthz", HEALTHZ_CONNECTIONS)]
    return [
        "| reference | value |",
        "|---|---|",
        f"| argon2id verify, {r['hash']['threads']} cores busy (m=19456 KiB, t=2, p=1) | "
        f"{r['hash']['mean_verify_ms']:.2f} ms: hashing ceiling "
        f"{res.hash_ceiling:.1f} verifies/s |",
        *pgbench_rows(res),
        f"| GET /healthz, {HEALTHZ_CONNECTIONS} conns (HTTP ceiling) | "
        f"{healthz.median('rps'):,.0f} req/s, p50 {healthz.median('p50_ms'):.2f} ms, "
        f"p99 {healthz.median('p99_ms'):.2f} ms, {healthz.errors} errors |",
        *flood_rows(res),
        f"| server RSS idle / peak | {r['rss_idle_mib']:.1f} MiB (private "
        f"{r['rss_idle_parts_mib']['anon']:.1f}, mapped files "
        f"{r['rss_idle_parts_mib']['file']:.1f}) / {r['rss_peak_mib']:.1f} MiB (private "
        f"memory right after a cell at most {peak_private_mib(res):.1f}) |",
        f"| start to ready, migrations applied (median of {len(starts)}) | "
        f"{statistics.median(starts):.0f} ms ({', '.join(f'{s:.0f}' for s in starts)}) |",
    ]


def peak_private_mib(res: Results) -> float:
    """The most private (anonymous) memory read right after any cell's run."""
    return max((r.raw["server_rss_anon_after_mib"] for c in res.cells.values()
                for r in c.runs), default=0.0)


def pgbench_rows(res: Results) -> list[str]:
    p = res.figures.get("pgbench")
    if not p:
        return []
    return [f"| pgbench single-row UPDATE, {p['clients']} clients (database write ceiling) "
            f"| {p['tps']:,.0f} transactions/s |"]


def limits_rows(res: Results) -> list[str]:
    """The same operations with per-IP budgets in Redis and in process, back to back."""
    rows = [f"| {name} | {LIMITS_CONNECTIONS} | {shared:,.0f} | {local:,.0f} "
            f"| {limits_cost(shared, local):+.1f} % |"
            for name, shared, local in limits_pairs(res)]
    if not rows:
        return []
    return ["", "Shared per-IP limits: each operation on the server with its budgets in "
            "Redis and, back to back, on one with `RATE_LIMIT_IP_SHARED=false`:", "",
            f"| operation | conns | req/s, {SHARED_LIMITS} | req/s, {LOCAL_LIMITS} | cost |",
            "|---|---:|---:|---:|---:|", *rows]


def limits_pairs(res: Results) -> list[tuple[str, float, float]]:
    """(operation, req/s with budgets in Redis, req/s in process) of every pair that ran."""
    pairs = []
    for name in LIMITS_OPERATIONS:
        shared = res.cells.get((f"{name} [{SHARED_LIMITS}]", LIMITS_CONNECTIONS))
        local = res.cells.get((f"{name} [{LOCAL_LIMITS}]", LIMITS_CONNECTIONS))
        if shared and local:
            pairs.append((name, shared.median("rps"), local.median("rps")))
    return pairs


def limits_cost(shared: float, local: float) -> float:
    """The throughput lost to shared limits, in percent of the in-process figure."""
    return 100 * (local - shared) / local if local else 0.0


def flood_rows(res: Results) -> list[str]:
    if not res.with_flood:
        return []
    me = res.cells[("flood: me", FLOOD_ME_CONNECTIONS)]
    login = res.cells[("flood: login", FLOOD_LOGIN_CONNECTIONS)]
    return [
        f"| `me` p99 under a login flood ({FLOOD_ME_CONNECTIONS} conns me, "
        f"{FLOOD_LOGIN_CONNECTIONS} conns login) | {me.median('p99_ms'):.2f} ms "
        f"(p50 {me.median('p50_ms'):.2f} ms; me {me.median('rps'):,.0f} req/s, "
        f"login {login.median('rps'):,.0f} req/s, {sum(r.shed for r in login.runs)} shed; "
        f"{me.errors + login.errors} errors) |",
    ]


def target_rows(res: Results) -> list[str]:
    lines = ["| target (issue 14) | wanted | measured | met | why missed |",
             "|---|---|---|---|---|"]
    for key, figure, wanted, measured, met in targets(res):
        why = "" if met else MISS_REASONS.get(key, "")
        lines.append(f"| {figure} | {wanted} | {measured} | {'yes' if met else 'no'} "
                     f"| {why} |")
    return lines


def failure_lines(res: Results) -> list[str]:
    failures = [(key, c) for key, c in res.cells.items() if c.errors]
    if not failures:
        return []
    lines = ["", "**Failures** (each counted in `errors`, never as throughput):"]
    for (name, conns), cell in failures:
        for i, run_ in enumerate(cell.runs):
            if run_.errors:
                lines.append(f"- {name}, {conns} conns, run {i + 1}: {run_.summary()}")
    return lines


def log_problem_lines(res: Results) -> list[str]:
    problems = res.figures["server_log_problems"]
    if not problems["count"]:
        return []
    return ["", f"Server log: {problems['count']} WARN/ERROR line(s), by message:",
            *(f"- {n} x `{message}`" for message, n in problems["by_message"].most_common(10))]


# --- Targets met or missed ---------------------------------------------------------------


def targets(res: Results) -> list[tuple]:
    """(key, figure, wanted, measured, met) of the targets whose cells ran (with --only,
    some did not: a section missing any of its cells is left out)."""
    rows = []
    for section in (me_target, refresh_target, hash_targets, reset_targets, flood_target,
                    resource_targets, wave2_targets, limits_targets):
        try:
            rows += section(res)
        except KeyError:
            pass
    return rows


def me_target(res: Results) -> list[tuple]:
    want = TARGETS["me_healthz_ratio"]
    ratio = (res.cells[("me", 64)].median("rps")
             / res.cells[("GET /healthz", HEALTHZ_CONNECTIONS)].median("rps"))
    return [("me_healthz_ratio", "me, 64 conns", f">= {want} x GET /healthz",
             f"{ratio:.2f} x", ratio >= want)]


def refresh_target(res: Results) -> list[tuple]:
    want = TARGETS["refresh_pgbench_ratio"]
    tps = res.figures["pgbench"]["tps"]
    ratio = res.cells[("refreshToken", 64)].median("rps") / tps
    return [("refresh_pgbench_ratio", "refreshToken, 64 conns",
             f">= {want} x pgbench single-row UPDATE, 64 clients",
             f"{ratio:.2f} x ({tps:,.0f} tps)", ratio >= want)]


def hash_targets(res: Results) -> list[tuple]:
    want = TARGETS["hash_share_pct"]
    rows = []
    for name in ("login", "register"):
        share = 100 * res.cells[(name, 64)].median("rps") / res.hash_ceiling
        rows.append(("hash_share_pct", f"{name}, 64 conns",
                     f">= {want:.0f} % of hashing ceiling", f"{share:.0f} %", share >= want))
    return rows


def reset_targets(res: Results) -> list[tuple]:
    want = TARGETS["reset_p50_gap_pct"]
    rows = []
    for conns in CONNECTIONS:
        a = res.cells[(KNOWN, conns)].median("p50_ms")
        b = res.cells[(UNKNOWN, conns)].median("p50_ms")
        gap = 100 * abs(a - b) / min(a, b) if min(a, b) > 0 else 0.0
        rows.append(("reset_p50_gap_pct", f"reset p50 known vs unknown, {conns} conns",
                     f"within {want:.0f} %", f"{gap:.0f} % ({a:.2f} vs {b:.2f} ms)",
                     gap <= want))
    return rows


def flood_target(res: Results) -> list[tuple]:
    if not res.with_flood:
        return []
    want = TARGETS["flood_me_p99_ms"]
    worst = max(r.p99_ms for r in res.cells[("flood: me", FLOOD_ME_CONNECTIONS)].runs)
    return [("flood_me_p99_ms", "me p99 under a login flood, worst run",
             f"<= {want:.0f} ms", f"{worst:.2f} ms", worst <= want)]


def resource_targets(res: Results) -> list[tuple]:
    t, r = TARGETS, res.figures
    start = statistics.median(res.starts)
    return [
        ("rss_idle_mib", "RSS idle", f"<= {t['rss_idle_mib']:.0f} MiB",
         f"{r['rss_idle_mib']:.1f} MiB", r["rss_idle_mib"] <= t["rss_idle_mib"]),
        ("rss_peak_mib", "RSS peak", f"<= {t['rss_peak_mib']:.0f} MiB",
         f"{r['rss_peak_mib']:.1f} MiB", r["rss_peak_mib"] <= t["rss_peak_mib"]),
        ("start_ms", "start to ready", f"<= {t['start_ms']:.0f} ms", f"{start:.0f} ms",
         start <= t["start_ms"]),
    ]


def wave2_targets(res: Results) -> list[tuple]:
    """Each wave-2 operation in the table at both connection counts, without errors."""
    rows = []
    for op in (op for op in res.ops if op.wave2):
        cells = [res.cells[(op.name, conns)] for conns in CONNECTIONS]
        errors = sum(c.errors for c in cells)
        rows.append(("wave2", f"{op.name} in the table", "8 and 64 conns, 0 errors",
                     f"{errors} errors", errors == 0))
    return rows


def limits_targets(res: Results) -> list[tuple]:
    want = TARGETS["limits_cost_pct"]
    rows = []
    for name, shared, local in limits_pairs(res):
        cost = limits_cost(shared, local)
        rows.append(("limits_cost_pct", f"cost of shared per-IP limits, {name}",
                     f"<= {want:.0f} %", f"{cost:+.1f} %", cost <= want))
    return rows


# --- The JSON report ---------------------------------------------------------------------


def json_report(res: Results) -> dict:
    cells = []
    for (name, conns), cell in res.cells.items():
        cells.append({
            "operation": name, "connections": conns, "errors": cell.errors,
            "rps": round(cell.median("rps"), 1), "p50_ms": round(cell.median("p50_ms"), 3),
            "p99_ms": round(cell.median("p99_ms"), 3),
            "busy_after_s": cell.median("busy_after_s"),
            "runs": [run_.raw for run_ in cell.runs],
        })
    return {**res.figures, "start_to_ready_median_ms": statistics.median(res.starts),
            "cells": cells,
            "targets": [{"figure": f, "wanted": w, "measured": m, "met": ok}
                        for _, f, w, m, ok in targets(res)]}

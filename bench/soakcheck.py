"""The soak's verdict: its checks over what it measured, and the report (Markdown and JSON)."""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from typing import Any

from soakload import Tally

MiB = 2**20
# A relay process keeps at most this many database connections: SQLAlchemy's pool (5) and the usage writer's.
DATABASE_CONNECTIONS = 6


def rss_growth(data: dict[str, Any]) -> tuple[int, int, float] | None:
    """RSS at the end of the first 10% and at the end, and the growth in percent."""
    marks = data["rss_marks"]
    if 1 not in marks or 10 not in marks:
        return None
    first, last = marks[1], marks[10]
    return first, last, (last - first) / first * 100 if first else 0.0


def record_counts(data: dict[str, Any]) -> tuple[Counter[tuple[str | None, str]], Counter[tuple[str, int]],
                                                   Counter[str]]:
    """Stored records per (key, route), per (route, status), per outcome."""
    by_key: Counter[tuple[str | None, str]] = Counter()
    by_status: Counter[tuple[str, int]] = Counter()
    by_outcome: Counter[str] = Counter()
    for row in data["records"]:
        by_key[(row["key"], row["route"])] += row["count"]
        by_status[(row["route"], row["status"])] += row["count"]
        by_outcome[row["outcome"]] += row["count"]
    return by_key, by_status, by_outcome


def checks(data: dict[str, Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    tally: Tally = data["tally"]
    base, end = data["baseline"], data["end"]
    out: list[dict[str, Any]] = []

    def check(name: str, ok: bool, detail: str) -> None:
        out.append({"name": name, "ok": bool(ok), "detail": detail})

    growth = rss_growth(data)
    if growth is None:
        check("RSS growth", False, "the run did not reach its 10% and 100% marks")
    else:
        first, last, pct = growth
        check("RSS growth", pct <= args.max_rss_growth,
              f"{first / MiB:.1f} MiB at 10% → {last / MiB:.1f} MiB at the end: {pct:+.1f}% "
              f"(at most {args.max_rss_growth:g}%)")
    leaked = end["rest"] - base["rest"]
    more = {kind: n - base["descriptors"].get(kind, 0) for kind, n in end["descriptors"].items()
            if n > base["descriptors"].get(kind, 0)}
    check("file descriptors", leaked <= 0 and end["client"] == 0,
          f"{base['rest']} at the baseline, {end['rest']} at the end (client, upstream and database connections "
          f"apart), {end['client']} client connections left" + (f"; more at the end: {more}" if leaked > 0 else ""))
    bound = DATABASE_CONNECTIONS * args.workers
    check("database connections", end["database"] <= bound,
          f"{base['database']} at the baseline, {end['database']} at the end (its pools keep at most {bound})")
    pooled = "after the pool's keep-alive" if end["pool_waited"] else "idle in the pool (no keep-alive wait)"
    upstream_ok = (end["upstream_in_progress"] == 0 and end["upstream_close_wait"] == 0
                   and (end["upstream"] == 0 if end["pool_waited"] else end["upstream"] <= args.clients))
    check("upstream connections", upstream_ok,
          f"{end['upstream']} left {pooled}, {end['upstream_close_wait']} in CLOSE_WAIT, "
          f"{end['upstream_in_progress']} upstream requests still in progress")
    stored_by_key, stored_by_status, _ = record_counts(data)
    lost = sum(max(0, n - stored_by_key[k]) for k, n in tally.records.items())
    extra = sum(max(0, n - tally.records[k]) for k, n in stored_by_key.items())
    expected, stored = sum(tally.records.values()), sum(stored_by_key.values())
    check("usage records", lost == 0 and extra == 0,
          f"{expected:,} expected, {stored:,} stored: {lost} lost, {extra} unexpected (per key and route)")
    short = {f"{route} {status}": n - stored_by_status[(route, status)]
             for (route, status), n in tally.statuses.items() if stored_by_status[(route, status)] < n}
    check("records by status", not short,
          "every status the clients saw is recorded" if not short else f"fewer records than answers: {short}")
    relay_5xx = {k: v for k, v in tally.server_errors.items() if k.startswith("relay")}
    check("5xx not caused by the upstream", not relay_5xx,
          f"{sum(relay_5xx.values())} ({dict(relay_5xx) or 'none'}); the upstream's own: "
          f"{sum(tally.server_errors.values()) - sum(relay_5xx.values())}")
    check("answers as expected", not tally.unexpected,
          "every answer is what its kind expects" if not tally.unexpected
          else f"{sum(tally.unexpected.values())} not: {dict(tally.unexpected.most_common(5))}")
    log = data["log"]
    check("relay log", log["internal errors"] == 0 and log["tracebacks"] == 0,
          f"{log['internal errors']} internal errors, {log['tracebacks']} tracebacks")
    return out


def render(data: dict[str, Any], args: argparse.Namespace) -> str:
    tally: Tally = data["tally"]
    base, end = data["baseline"], data["end"]
    growth = rss_growth(data)
    stored_by_key, _, stored_by_outcome = record_counts(data)
    peak = max((s["rss"] for s in data["samples"]), default=0)
    lines = [f"# gptrelay soak: {data['requests']:,} requests, {args.storage}, {args.workers} worker(s), "
             f"{args.clients} clients", ""]
    lines += ["| check | result | detail |", "| --- | --- | --- |"]
    lines += [f"| {c['name']} | {'pass' if c['ok'] else '**FAIL**'} | {c['detail']} |" for c in data["checks"]]
    lines += ["", "| figure | value |", "| --- | --- |",
              f"| duration | {data['elapsed_s']:.0f} s (+ a warm-up of {data['warmup']:,} requests) |",
              f"| usage records in the database before the soak | {args.prefill:,} |",
              f"| requests/s | {data['rps']:.0f} (load generator CPU {data['load_cpu_s']:.0f} s, same machine) |"]
    if growth is not None:
        lines.append(f"| relay RSS at 10% / end / growth | {growth[0] / MiB:.1f} MiB / {growth[1] / MiB:.1f} MiB / "
                     f"{growth[2]:+.1f}% |")
    lines += [f"| relay RSS peak (1 s samples) / after settling | {peak / MiB:.1f} MiB / {end['rss'] / MiB:.1f} MiB |",
              f"| relay fds baseline / end (total) | {base['fds']} / {end['fds']} |",
              f"| … of which upstream connections | {base['upstream']} / {end['upstream']} |",
              f"| … database / Redis connections | {base['database']} / {end['database']}; "
              f"{base['redis']} / {end['redis']} |",
              f"| settled after | {end['settle_s']} s |",
              f"| upstream requests (served / cut by the relay going away) | {end['upstream_requests']:,} / "
              f"{end['upstream_gone']:,} |",
              f"| usage records expected / stored | {sum(tally.records.values()):,} / "
              f"{sum(stored_by_key.values()):,} |",
              f"| stored outcomes | {', '.join(f'{k} {v:,}' for k, v in sorted(stored_by_outcome.items()))} |",
              f"| 5xx by cause | {', '.join(f'{k}: {v:,}' for k, v in sorted(tally.server_errors.items())) or 'none'}"
              " |",
              f"| refused by the relay's RPM/TPM limits (429) | {tally.relay_refusals:,} |",
              f"| clients that left mid-stream | {tally.left:,} |",
              f"| load average at the end | {' '.join(f'{x:.2f}' for x in os.getloadavg())} |", ""]
    lines += ["## Answers by kind (warm-up included)", "", "| kind | status: requests |", "| --- | --- |"]
    kinds: dict[str, Counter[int]] = {}
    for (kind, status), n in tally.by_kind.items():
        kinds.setdefault(kind, Counter())[status] += n
    for kind, statuses in kinds.items():
        lines.append(f"| {kind} | {', '.join(f'{s}: {n:,}' for s, n in sorted(statuses.items()))} |")
    lines += ["", "## Usage records by key and route", "", "| key | route | expected | stored |",
              "| --- | --- | --- | --- |"]
    for key_route in sorted(set(tally.records) | set(stored_by_key), key=lambda k: (k[0] or "", k[1])):
        lines.append(f"| {key_route[0] or '(owner)'} | {key_route[1]} | {tally.records[key_route]:,} | "
                     f"{stored_by_key[key_route]:,} |")
    if tally.unexpected:
        lines += ["", "## Unexpected answers", ""]
        for what, n in tally.unexpected.most_common(20):
            lines.append(f"- {n} × {what}: `{tally.examples.get(what, '')[-200:]!r}`")
    return "\n".join(lines) + "\n"


def as_json(data: dict[str, Any]) -> str:
    tally: Tally = data["tally"]
    out = {k: v for k, v in data.items() if k != "tally"}
    out["tally"] = {"sent": tally.sent, "relay_refusals": tally.relay_refusals, "left": tally.left,
                    "by_kind": [[k, s, n] for (k, s), n in tally.by_kind.items()],
                    "unexpected": dict(tally.unexpected), "server_errors": dict(tally.server_errors),
                    "records": [[k, r, n] for (k, r), n in tally.records.items()]}
    return json.dumps(out, indent=1, default=str)

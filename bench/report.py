"""Render bench/run.py's results as Markdown, with the issue-4 and issue-10 targets checked."""

from __future__ import annotations

from typing import Any

TARGETS = {
    "v1_vs_pipe": 1.0,  # /v1 streamed responses/s >= 1.0x the byte pipe
    "chat_vs_pipe": 0.7,  # /chat streamed responses/s >= 0.7x the byte pipe
    "ttfb_added_p50_ms": 0.5,
    "ttfb_added_p99_ms": 2.0,
    "gap_vs_direct": 2.0,
    "peak_rss_mb": 400.0,
    "workers_ratio": 1.7,
    "team_vs_pipe": 0.9,  # /v1 streamed with a named key, limits and usage >= 0.9x the byte pipe
    "team_ttfb_added_ms": 0.1,  # over the owner's key on the same relay
}
TEAM_TARGETS = ("team /v1", "team /v1 pg+redis")
POOL = "relay /v1, 3 upstreams"


def fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}×" if a and b else "—"


def table(head: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return [*lines, ""]


def render(data: dict[str, Any]) -> str:
    m = data["machine"]
    o = data["options"]
    out = ["# gptrelay benchmark", "",
           f"{m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, Linux {m['kernel']}; "
           f"Python {m['python']}, aiohttp {m['aiohttp']}, uvloop {m['uvloop']}; "
           f"gptrelay {m['gptrelay']} ({m['commit']}); fd limit {m['fd_limit']}; "
           f"load average {m['loadavg_at_start']} at start, {m.get('loadavg_at_end')} at end.", "",
           f"Upstream: {'bench/fastfake.py' if o['upstream'] == 'fast' else 'python -m gptrelay.fake'}; "
           f"{m.get('pinning', '')}. Medians over {o['rounds']} round(s); wrk {o['connections']} "
           f"connections × {o['seconds']} s; latency over {o['requests']} sequential requests. "
           f"Run took {data.get('elapsed_s', 0):.0f} s.", ""]
    if data.get("noisy_measurements"):
        out += [f"**Warning:** {data['noisy_measurements']} measurement(s) started while other programs "
                "kept more than a quarter of a core busy (see the “other CPU” columns); "
                "treat those figures with care.", ""]
    checks: list[tuple[str, str, bool | None]] = []
    team_checks: list[tuple[str, str, bool | None]] = []

    lat = data.get("latency")
    if lat:
        direct = lat["direct"]
        out += ["## Latency at concurrency 1 (50 unpaced chunks, ms)", ""]
        rows = []
        for name, r in lat.items():
            rows.append([name, fmt(r["ttfb_p50_ms"], 3), fmt(r["ttfb_p99_ms"], 3),
                         fmt(r["ttfb_p50_ms"] - direct["ttfb_p50_ms"], 3),
                         fmt(r["ttfb_p99_ms"] - direct["ttfb_p99_ms"], 3),
                         fmt(r["total_p50_ms"], 3), fmt(r["total_p99_ms"], 3), fmt(int(r["errors"]))])
        out += table(["target", "TTFB p50", "TTFB p99", "added p50", "added p99", "total p50",
                      "total p99", "errors"], rows)
        pipe = lat["byte pipe"]
        for name in ("relay /chat", "relay /v1"):
            r = lat[name]
            added50 = r["ttfb_p50_ms"] - direct["ttfb_p50_ms"]
            added99 = r["ttfb_p99_ms"] - direct["ttfb_p99_ms"]
            checks.append((f"{name}: TTFB added (vs direct) ≤ 0.5 ms p50 / ≤ 2 ms p99",
                           f"{added50:.3f} / {added99:.3f} ms (vs byte pipe: "
                           f"{r['ttfb_p50_ms'] - pipe['ttfb_p50_ms']:+.3f} / "
                           f"{r['ttfb_p99_ms'] - pipe['ttfb_p99_ms']:+.3f} ms)",
                           added50 <= TARGETS["ttfb_added_p50_ms"] and added99 <= TARGETS["ttfb_added_p99_ms"]))
        owner = lat["relay /v1"]
        for name in TEAM_TARGETS:
            if name in lat:
                added = lat[name]["ttfb_p50_ms"] - owner["ttfb_p50_ms"]
                team_checks.append((f"{name}: TTFB added over the owner's key (relay /v1) ≤ 0.1 ms p50",
                                    f"{added:+.3f} ms (p99 {lat[name]['ttfb_p99_ms'] - owner['ttfb_p99_ms']:+.3f})",
                                    added <= TARGETS["team_ttfb_added_ms"]))

    for part, title in (("streamed", "Streamed responses/s (50 unpaced chunks)"),
                        ("plain", "Non-streamed requests/s")):
        res = data.get(part)
        if not res:
            continue
        pipe = res["byte pipe"]["rps"]
        direct = res["direct"]["rps"]
        out += [f"## {title}, {o['connections']} connections", ""]
        rows = []
        for name, r in res.items():
            each = [x[name]["rps"] for x in data.get("rounds", {}).get(part, []) if name in x]
            spread = f"{min(each):,.0f}–{max(each):,.0f}" if len(each) > 1 else "—"
            rows.append([name, fmt(r["rps"]), spread, ratio(r["rps"], pipe), ratio(r["rps"], direct),
                         fmt(r["cpu_us"]) if r.get("cpu_us") else "—",
                         fmt(r["cpu_util"], 2) if r.get("cpu_util") else "—",
                         fmt(r["upstream_util"], 2), fmt(r["other_util"], 2),
                         fmt(r["lat_p99_us"] / 1e3, 1), fmt(int(r["errors"]))])
        out += table(["target", "per s", "rounds' range", "× byte pipe", "× direct", "target CPU µs/resp",
                      "target CPU (cores)", "upstream CPU", "other CPU", "p99 ms", "errors"], rows)
        if part == "streamed":
            v1 = res["relay /v1"]["rps"] / pipe
            chat = res["relay /chat"]["rps"] / pipe
            checks.append(("/v1 streamed ≥ 1.0× byte pipe", f"{v1:.2f}×", v1 >= TARGETS["v1_vs_pipe"]))
            checks.append(("/chat streamed ≥ 0.7× byte pipe", f"{chat:.2f}×", chat >= TARGETS["chat_vs_pipe"]))
            for name in TEAM_TARGETS:
                if name in res:
                    x = res[name]["rps"] / pipe
                    team_checks.append((f"{name}: streamed ≥ 0.9× byte pipe", f"{x:.2f}×",
                                        x >= TARGETS["team_vs_pipe"]))
            if POOL in res:
                x = res[POOL]["rps"] / pipe
                checks.append((f"{POOL}: streamed ≥ 0.9× byte pipe (issue 11)", f"{x:.2f}×  (one upstream: "
                               f"{res['relay /v1']['rps'] / pipe:.2f}×)", x >= TARGETS["team_vs_pipe"]))
            cpu_v1 = res["relay /v1"].get("cpu_us")
            cpu_pipe = res["byte pipe"].get("cpu_us")
            cpu_chat = res["relay /chat"].get("cpu_us")
            if cpu_v1 and cpu_pipe and cpu_chat:
                out += [f"CPU per response relative to the byte pipe: /v1 {cpu_v1 / cpu_pipe:.2f}×, "
                        f"/chat {cpu_chat / cpu_pipe:.2f}× (lower is better; the throughput ratio "
                        "a CPU-bound relay would reach is the inverse).", ""]

    streams = data.get("streams")
    if streams:
        out += ["## Paced streams: N at once, 20 chunks 50 ms apart", ""]
        rows = []
        for n, by_target in streams.items():
            direct_gap = by_target.get("direct", {}).get("gap_p99_ms")
            for name, r in by_target.items():
                errors = ", ".join(f"{k} {v}" for k, v in r["errors"].items()) or "none"
                recorded = fmt(int(r["recorded"])) if r.get("recorded") is not None else "—"
                if r.get("recorded_at_end") not in (None, r.get("recorded")):  # some came from the spool
                    recorded += f" ({fmt(int(r['recorded_at_end']))} when the streams ended)"
                rows.append([n, name, f"{r['complete']:,.0f}/{int(r['n']):,}", recorded, errors,
                             fmt(r["gap_p50_ms"]), fmt(r["gap_p99_ms"]), ratio(r["gap_p99_ms"], direct_gap),
                             fmt(r.get("ttfb_p99_ms")), fmt(r.get("total_p99_ms")),
                             fmt(r["peak_rss_mb"]) if r.get("peak_rss_mb") else "—",
                             fmt(r["target_cpu_util"], 2), fmt(r["upstream_cpu_util"], 2),
                             fmt(r["generator_cpu_util"], 2), fmt(r.get("other_cpu_util"), 2),
                             fmt(r["elapsed_s"], 1)])
            for name in ("relay /v1", "relay /chat"):
                r = by_target.get(name)
                if r and int(n) >= 10_000:
                    ok = (r["complete"] == r["n"] and r["gap_p99_ms"] <= TARGETS["gap_vs_direct"] * direct_gap
                          and (r["peak_rss_mb"] or 0) <= TARGETS["peak_rss_mb"])
                    checks.append((f"{name}: {int(n):,} paced streams all complete, p99 gap ≤ 2× direct, "
                                   "peak RSS ≤ 400 MB",
                                   f"{r['complete']:,.0f}/{int(r['n']):,}, "
                                   f"{ratio(r['gap_p99_ms'], direct_gap)}, {r['peak_rss_mb']:.0f} MB", ok))
            for name, r in by_target.items():
                if name.startswith(TEAM_TARGETS) and r.get("recorded") is not None and int(n) >= 10_000:
                    team_checks.append((f"{name}: {int(n):,} paced streams all complete, each recorded",
                                        f"{r['complete']:,.0f} complete, {int(r['recorded']):,} recorded",
                                        r["complete"] == r["n"] == r["recorded"]))
        out += table(["N", "target", "complete", "usage records", "errors", "gap p50 ms", "gap p99 ms", "× direct",
                      "first byte p99 ms", "whole stream p99 ms",
                      "peak RSS MB", "target CPU", "upstream CPU", "generator CPU", "other CPU", "seconds"],
                     rows)
        out += ["Gap: each stream's largest pause between two content pieces (the fake paces 50 ms; "
                "a stream whose pieces all arrive in one read has gap 0, so read it with the first-byte "
                "and whole-stream columns: an unhurried stream takes ~1,100 ms). "
                "CPU columns are cores busy over the run; a value near 1.0 for the upstream or the "
                "generator means the load side, not the target, set the pace; “other CPU” is everything "
                "else on the machine (other users' programs, kernel).", ""]

    counted = data.get("instructions")
    if counted and "skipped" not in counted:
        out += ["## Instructions per reply (callgrind: the same count on every run)", ""]
        rows = []
        for shape, label in (("streamed", "streamed, 50 chunks, one network read each"),
                             ("plain", "non-streamed")):
            row = counted.get(shape, {})
            pipe = row.get("byte pipe")
            rows += [[label, name, fmt(value), ratio(value, pipe)] for name, value in row.items()]
        out += table(["shape", "target", "instructions per reply", "× byte pipe"], rows)
        out += ["Sequential requests, each target alone under `valgrind --tool=callgrind` on its core; "
                "a CPU-bound target's throughput ratio is roughly the inverse of its instruction ratio.", ""]
    elif counted:
        out += [f"Instructions: skipped ({counted['skipped']}).", ""]

    workers = data.get("workers")
    if workers and "skipped" not in workers:
        one, two = workers["1"], workers["2"]
        out += ["## --workers 2 vs 1 (streamed /v1, nothing pinned)", ""]
        rows = [[w, fmt(r["rps"]), ratio(r["rps"], one["rps"]), fmt(r["cpu_us"]), fmt(r["cpu_util"], 2),
                 fmt(r["upstream_util"], 2), fmt(r.get("load_util"), 2), fmt(r["other_util"], 2),
                 fmt(r.get("idle_util"), 2), fmt(int(r["errors"]))]
                for w, r in workers.items()]
        out += table(["workers", "per s", "× 1 worker", "relay CPU µs/resp", "relay CPU (cores)",
                      "upstream CPU", "wrk CPU", "other CPU", "idle (cores)", "errors"], rows)
        out += [f"On {m['cores']} cores the upstream and wrk share the cores with the workers: when "
                "nothing is idle, the ratio is bounded by the load side, not the relay. Relay CPU per "
                "response staying flat is what shows the workers scale: given a free core each, two "
                f"workers would serve about {2 * one['cpu_us'] / two['cpu_us']:.2f}× one worker "
                "(an estimate from CPU per response, not a measurement).", ""]
        checks.append(("--workers 2 ≥ 1.7× one worker", ratio(two["rps"], one["rps"]),
                       two["rps"] / one["rps"] >= TARGETS["workers_ratio"]))
    elif workers:
        out += [f"Workers: {workers['skipped']}.", ""]

    if checks:
        out += ["## Issue-4 and issue-11 targets", ""]
        out += table(["target", "measured", "met"],
                     [[c, v, "yes" if ok else ("no" if ok is not None else "—")] for c, v, ok in checks])
    if team_checks:
        out += ["## Issue-10 targets (a named key with RPM and TPM limits, every request recorded)", ""]
        out += table(["target", "measured", "met"],
                     [[c, v, "yes" if ok else ("no" if ok is not None else "—")] for c, v, ok in team_checks])
    return "\n".join(out)

"""Write the throughput benchmark's figures into docs/performance.json and docs/performance.md.

Other benchmarks keep their own sections of performance.md ("Claim latency", "Classifier speed",
"Similar cases") and their own keys in performance.json: this replaces only its own section and
its own keys.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SECTION = "## Throughput and latency"
HEADER = "# Performance\n\nFigures measured by the benchmarks in `bench/`, each with its command.\n"
LATENCY_KEYS = ("p50_latency_s", "p95_latency_s", "p99_latency_s")
KEYS = (
    "e2e_posts_per_s_1_worker",
    "e2e_posts_per_s_2_workers",
    "p50_latency_s",
    "p99_latency_s",
    "offered_load_posts_per_s",
    "ratio_vs_per_message",
    "ratio_vs_quixstreams",
    "worker_rss_mb",
    "claim_p99_ms",
    "claim_p99_ms_2_processes",
    "claim_p99_ms_4_processes",
    "claim_p99_ms_2_processes_paced",
    "claim_p99_ms_4_processes_paced",
    "p99_latency_s_at_half_capacity",
    "server_cpu_ms_per_post",
    "worker_cpu_ms_per_post",
    "store_server",
)


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if value < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def section(r: dict[str, Any]) -> str:
    loads = r.get("load_average", {})
    claim = r.get("claim_p99_ms")
    half = r.get("at_half_capacity") or {}
    rows = [
        ("posts replayed", _fmt(r.get("posts")), "", ""),
        (
            "end to end, 1 worker (posts/s)",
            _fmt(r.get("e2e_posts_per_s_1_worker")),
            "",
            loads.get("e2e_1", ""),
        ),
        (
            "end to end, 2 workers (posts/s)",
            _fmt(r.get("e2e_posts_per_s_2_workers")),
            ">= 5,000 (issue 23; 10,000 first)",
            loads.get("e2e_2", ""),
        ),
        (
            "CPU ms per post, 2 workers (workers / Kafka / FerretDB / PostgreSQL)",
            " / ".join(
                _fmt(r.get("e2e_cpu_ms_per_post_2_workers", {}).get(k))
                for k in ("workers", "kafka", "ferretdb", "postgres")
            ),
            "",
            "",
        ),
        ("worker peak RSS (MB)", _fmt(r.get("worker_rss_mb")), "<= 400", ""),
        (
            "offered load (posts/s)",
            _fmt(r.get("offered_load_posts_per_s")),
            "2,000",
            loads.get("lat", ""),
        ),
        (
            "produce -> claimable p50 / p95 / p99 (s)",
            " / ".join(_fmt(r.get(k)) for k in LATENCY_KEYS),
            "p99 <= 1",
            "",
        ),
        (
            "at half the 2-worker rate: offered (posts/s); p50 / p95 / p99 (s)",
            f"{_fmt(half.get('offered_load_posts_per_s'))}; "
            + " / ".join(_fmt(half.get(k)) for k in LATENCY_KEYS),
            "",
            loads.get("half", ""),
        ),
        (
            "one-message-at-a-time loop, 1 process (posts/s)",
            _fmt(r.get("peer_posts_per_s_per_message")),
            "",
            loads.get("per-message", ""),
        ),
        (
            "Quix Streams, 1 process (posts/s)",
            _fmt(r.get("peer_posts_per_s_quixstreams")),
            "",
            loads.get("quix", ""),
        ),
        (
            "ours / per-message loop, 1 process each",
            _fmt(r.get("ratio_vs_per_message")),
            ">= 20",
            "",
        ),
        ("ours / Quix Streams, 1 process each", _fmt(r.get("ratio_vs_quixstreams")), ">= 3", ""),
        (
            "claim p99 (ms), from bench/claims.py",
            _fmt(claim) if claim is not None else "n/a: no claims.json found",
            "",
            "",
        ),
        *(
            (
                f"claim p99 (ms), {n} API processes{how}",
                _fmt(r.get(f"claim_p99_ms_{n}_processes{paced}")),
                "< 50",
                "",
            )
            for paced, how in (("", ""), ("_paced", ", agents pausing between claims"))
            for n in (2, 4)
        ),
        (
            "produce to claimable p99 at half capacity (s)",
            _fmt(r.get("p99_latency_s_at_half_capacity")),
            "<= 1",
            "",
        ),
        ("store server CPU ms per post, 2 workers", _fmt(r.get("server_cpu_ms_per_post")), "", ""),
        ("store server", str(r.get("store_server", "n/a")), "", ""),
    ]
    table = "\n".join(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows)
    met = ", ".join(f"{name}: {'met' if ok else 'NOT met'}" for name, ok in verdicts(r))
    return (
        f"{SECTION}\n\n"
        f"Command: `{r['command']}` (bench/throughput.py). Date: {r['date']}. "
        f"Machine: {r['machine']}.\n\n"
        "| figure | measured | target | load average (1/5/15 min) after the phase |\n"
        "|---|---|---|---|\n"
        f"{table}\n\n"
        f"Targets: {met}.\n"
    )


def verdicts(r: dict[str, Any]) -> list[tuple[str, bool]]:
    def at_least(key: str, floor: float) -> bool:
        return r.get(key) is not None and r[key] >= floor

    def at_most(key: str, ceiling: float) -> bool:
        return r.get(key) is not None and r[key] <= ceiling

    def below(key: str, ceiling: float) -> bool:
        return r.get(key) is not None and r[key] < ceiling

    p99 = r.get("p99_latency_s")
    offered = r.get("offered_load_posts_per_s") or 0
    return [
        ("10,000 posts/s with 2 workers", at_least("e2e_posts_per_s_2_workers", 10_000)),
        ("5,000 posts/s with 2 workers", at_least("e2e_posts_per_s_2_workers", 5_000)),
        ("p99 <= 1 s at 2,000 posts/s", p99 is not None and p99 <= 1.0 and offered >= 1900),
        ("p99 <= 1 s at half capacity", at_most("p99_latency_s_at_half_capacity", 1.0)),
        *(
            (
                f"claim p99 < 50 ms through {n} API processes{how}",
                below(f"claim_p99_ms_{n}_processes{paced}", 50.0),
            )
            for paced, how in (("", ""), ("_paced", ", agents pausing"))
            for n in (2, 4)
        ),
        ("20x the per-message loop", at_least("ratio_vs_per_message", 20)),
        ("3x Quix Streams", at_least("ratio_vs_quixstreams", 3)),
        ("RSS <= 400 MB", at_most("worker_rss_mb", 400)),
    ]


def write_report(results: dict[str, Any], json_path: Path, md_path: Path, notes: str = "") -> None:
    current: dict[str, Any] = {}
    if json_path.exists():
        current = json.loads(json_path.read_text())
    current.update({k: results.get(k) for k in KEYS})
    current["throughput_details"] = {k: v for k, v in results.items() if k not in KEYS}
    json_path.write_text(json.dumps(current, indent=2) + "\n")

    text = md_path.read_text() if md_path.exists() else HEADER
    body = section(results) + (f"\n{notes.strip()}\n" if notes else "")
    start = text.find(SECTION)
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + body
    else:
        nxt = text.find("\n## ", start + len(SECTION))
        # keep our hand-written notes (### subsections) that follow the generated table
        end = len(text) if nxt < 0 else nxt + 1
        old = text[start:end]
        keep = old[old.find("\n### ") :].rstrip("\n") + "\n" if "\n### " in old else ""
        text = text[:start] + body + keep + ("\n" if nxt >= 0 else "") + text[end:]
    md_path.write_text(text)


def splice_marked(path: Path, begin: str, end: str, lines: list[str], header: str = "") -> None:
    """Put ``lines`` (which open with ``begin`` and close with ``end``) in place of the part of
    ``path`` between those markers, or at its end when it has none; the rest is left alone."""
    text = path.read_text() if path.exists() else header
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + "\n".join(lines) + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n"
    path.write_text(text)

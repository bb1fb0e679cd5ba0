"""The publish API beside the yardstick: `conveyor serve` against `minimal_app.py`.

    .venv/bin/python benchmarks/publish_api.py [--database sqlite|postgresql|both]
        [--rounds 3] [--seconds 10] [--minimal PATH]

For each database, one `conveyor serve` process (embedded queue) and the yardstick
(`yardstick.py`), each on a fresh database, loaded by wrk (one thread, 50 connections)
in alternating rounds on: a single publish by queue id, a publish-batch of 100 messages,
and the yardstick's `POST /publish` (the same ~200-byte message, one durable insert).
Prints each round, then the medians: publish / minimal (goal >= 1.0x, p99 <= 1.5x the
minimal's) and messages/s of batches / messages/s of single publishes (goal >= 20x).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from yardstick import DEFAULT_MINIMAL, MESSAGE, Load, conveyor, minimal, need_wrk, wrk

BATCH = 100


def run(database: str, rounds: int, seconds: int, app: Path) -> dict[str, list[Load]]:
    loads: dict[str, list[Load]] = {"publish": [], "batch": [], "minimal": []}
    batch_body = '{"messages": [' + ",".join([MESSAGE] * BATCH) + "]}"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with conveyor(database, work) as ours, minimal(database, work, app) as yardstick:
            queue = f"{ours.base}/api/v1/zstorage/queue/{ours.queue_id}"
            runs = {
                "publish": lambda s: wrk(f"{queue}/publish", MESSAGE, key=ours.key, seconds=s),
                "batch": lambda s: wrk(
                    f"{queue}/publish-batch", batch_body, key=ours.key, seconds=s
                ),
                "minimal": lambda s: wrk(f"{yardstick}/publish", MESSAGE, seconds=s),
            }
            for measure in runs.values():
                measure(2)  # warm-up
            for r in range(rounds):
                for name, measure in runs.items():
                    load = measure(seconds)
                    loads[name].append(load)
                    print(
                        f"{database} round {r + 1} {name:8} {load.rps:9.0f} req/s "
                        f"p50 {load.p50_ms:7.2f} ms p99 {load.p99_ms:7.2f} ms",
                        flush=True,
                    )
    return loads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--minimal", type=Path, default=DEFAULT_MINIMAL)
    args = parser.parse_args()
    need_wrk()
    databases = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    results = {db: run(db, args.rounds, args.seconds, args.minimal) for db in databases}
    print(f"\nwrk -t1 -c50, {args.seconds} s a run, medians of {args.rounds} alternating rounds\n")
    print("| database | route | req/s | messages/s | p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|")
    for db, loads in results.items():
        for name, label, per in (
            ("publish", "POST …/publish (Conveyor)", 1),
            ("batch", f"POST …/publish-batch of {BATCH} (Conveyor)", BATCH),
            ("minimal", "POST /publish (minimal_app.py)", 1),
        ):
            rps = statistics.median(load.rps for load in loads[name])
            p50 = statistics.median(load.p50_ms for load in loads[name])
            p99 = statistics.median(load.p99_ms for load in loads[name])
            print(f"| {db} | {label} | {rps:,.0f} | {rps * per:,.0f} | {p50:.2f} | {p99:.2f} |")
    print()
    for db, loads in results.items():
        ratio = statistics.median(
            o.rps / m.rps for o, m in zip(loads["publish"], loads["minimal"], strict=True)
        )
        p99 = statistics.median(
            o.p99_ms / m.p99_ms for o, m in zip(loads["publish"], loads["minimal"], strict=True)
        )
        batch = statistics.median(
            BATCH * b.rps / o.rps for b, o in zip(loads["batch"], loads["publish"], strict=True)
        )
        print(
            f"{db}: publish / minimal {ratio:.2f}x (goal >= 1.0x), p99 {p99:.2f}x the "
            f"minimal's (goal <= 1.5x); batch of {BATCH} / single {batch:.1f}x messages/s "
            "(goal >= 20x)"
        )


if __name__ == "__main__":
    main()

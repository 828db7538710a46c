"""``make bench``: every benchmark, SQLite and (when reachable) PostgreSQL."""

from __future__ import annotations

import sys

from bench import bench_cloud_api, bench_dispatch, bench_ingest, bench_metrics
from bench.support import pg_available


def main() -> None:
    backends = ["sqlite"]
    if pg_available():
        backends.append("postgres")
    else:
        print("# PostgreSQL unreachable: PostgreSQL figures skipped", file=sys.stderr)
    for backend in backends:
        bench_ingest.run(backend)
    for backend in backends:
        plain_rate = bench_dispatch.run_dispatch_recipients_per_s(backend)
        bench_dispatch.run_personal_dispatch_cost(backend, plain_rate)
    if "postgres" in backends:
        bench_dispatch.run_fanout_msgs_per_s("postgres")
        bench_dispatch.run_worker_peak_rss_mb("postgres")
        bench_dispatch.run_worker_peak_rss_mb_10k("postgres")
        bench_cloud_api.run("postgres")
        bench_metrics.run()


if __name__ == "__main__":
    main()

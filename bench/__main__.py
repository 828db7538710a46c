"""``make bench``: every benchmark, SQLite and (when reachable) PostgreSQL."""

from __future__ import annotations

import sys

from bench import bench_ingest
from bench.support import pg_available


def main() -> None:
    backends = ["sqlite"]
    if pg_available():
        backends.append("postgres")
    else:
        print("# PostgreSQL unreachable: PostgreSQL figures skipped", file=sys.stderr)
    for backend in backends:
        bench_ingest.run(backend)


if __name__ == "__main__":
    main()

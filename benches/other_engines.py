#!/usr/bin/env python3
"""The side-by-side benchmark's checks in polars and DuckDB (`pip install polars duckdb`):
row count, sum, three null counts, distinct keys, a value set, a range and the newest
timestamp, in one query over the Delta table's live files (listed one per line in FILE_LIST by
`cargo bench --bench side_by_side`).

    python3 benches/other_engines.py --run polars|duckdb FILE_LIST

prints `seconds peak_kib`: the query's wall time (engine import excluded) and the process's
peak resident memory.
"""
import resource
import sys
import time

REGIONS = ["north", "south", "east", "west", "central"]


def polars_checks(files):
    import polars as pl

    start = time.perf_counter()
    c = pl.col
    pl.scan_parquet(files).select(
        pl.len().alias("rows"),
        c("amount").sum().alias("sum"),
        c("id").null_count().alias("n1"),
        c("amount").null_count().alias("n2"),
        c("ts").null_count().alias("n3"),
        c("id").drop_nulls().n_unique().alias("distinct"),
        (~c("region").is_in(REGIONS)).sum().alias("region"),
        ((c("amount") < 0) | (c("amount") > 1000000)).sum().alias("range"),
        c("ts").max().alias("newest"),
    ).collect()
    return time.perf_counter() - start


def duckdb_checks(files):
    import duckdb

    start = time.perf_counter()
    regions = ", ".join(f"'{r}'" for r in REGIONS)
    duckdb.sql(
        f"""SELECT count(*), sum(amount),
        count(*) FILTER (WHERE id IS NULL), count(*) FILTER (WHERE amount IS NULL),
        count(*) FILTER (WHERE ts IS NULL), count(DISTINCT id),
        count(*) FILTER (WHERE region NOT IN ({regions})),
        count(*) FILTER (WHERE amount < 0 OR amount > 1000000),
        max(ts)
        FROM read_parquet({files!r})"""
    ).fetchall()
    return time.perf_counter() - start


def main():
    if len(sys.argv) != 4 or sys.argv[1] != "--run":
        sys.exit(__doc__)
    engine, listed = sys.argv[2], sys.argv[3]
    with open(listed) as f:
        files = [line.strip() for line in f if line.strip()]
    seconds = {"polars": polars_checks, "duckdb": duckdb_checks}[engine](files)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(seconds, peak_kib)


if __name__ == "__main__":
    main()

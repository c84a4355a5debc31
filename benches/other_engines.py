#!/usr/bin/env python3
"""The demo suite's checks in polars and DuckDB, on the data files of the table that
`cargo bench --bench compare` writes (set RESTORE_DRILL_BENCH_DIR to keep it):

    RESTORE_DRILL_BENCH_DIR=/tmp/rdb cargo bench --bench compare -- 10000000 1
    python3 benches/other_engines.py /tmp/rdb/transactions 5

Each run is a fresh interpreter; prints the median wall time and median peak RSS of the
query (engine import excluded from the time, included in the memory).
"""
import resource
import statistics
import subprocess
import sys
import time

CURRENCIES = ["EUR", "USD", "GBP", "CHF"]
STATUSES = ["settled", "pending", "refunded"]


def polars_checks(files):
    import polars as pl

    start = time.perf_counter()
    c = pl.col
    pl.scan_parquet(files).select(
        pl.len().alias("rows"),
        c("transaction_id").null_count().alias("n1"),
        c("account_id").null_count().alias("n2"),
        c("amount").null_count().alias("n3"),
        c("transaction_id").drop_nulls().n_unique().alias("distinct"),
        c("amount").sum().alias("sum"),
        ((c("amount") < -100000) | (c("amount") > 1000000)).sum().alias("range"),
        (~c("currency").is_in(CURRENCIES)).sum().alias("currency"),
        (~c("status").is_in(STATUSES)).sum().alias("status"),
        c("booked_at").max().alias("newest"),
    ).collect()
    return time.perf_counter() - start


def duckdb_checks(files):
    import duckdb

    start = time.perf_counter()
    duckdb.sql(
        f"""SELECT count(*), count(*) FILTER (WHERE transaction_id IS NULL),
        count(*) FILTER (WHERE account_id IS NULL), count(*) FILTER (WHERE amount IS NULL),
        count(DISTINCT transaction_id), sum(amount),
        count(*) FILTER (WHERE amount < -100000 OR amount > 1000000),
        count(*) FILTER (WHERE currency NOT IN ('EUR','USD','GBP','CHF')),
        count(*) FILTER (WHERE status NOT IN ('settled','pending','refunded')),
        max(booked_at)
        FROM read_parquet('{files}')"""
    ).fetchall()
    return time.perf_counter() - start


def main():
    if sys.argv[1] == "--run":
        engine, files = sys.argv[2], sys.argv[3]
        seconds = {"polars": polars_checks, "duckdb": duckdb_checks}[engine](files)
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(seconds, peak_kib)
        return
    table, runs = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 5
    files = f"{table}/*.parquet"
    print(f"{'engine':<10} {'median s':>10} {'median peak MiB':>16}")
    for engine in ["polars", "duckdb"]:
        times, peaks = [], []
        for _ in range(runs):
            out = subprocess.run(
                [sys.executable, __file__, "--run", engine, files],
                check=True, capture_output=True, text=True,
            ).stdout.split()
            times.append(float(out[0]))
            peaks.append(int(out[1]) / 1024)
        print(f"{engine:<10} {statistics.median(times):>10.3f} {statistics.median(peaks):>16.0f}")


if __name__ == "__main__":
    main()

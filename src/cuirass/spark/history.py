"""`cuirass detect run --engine spark`: the causal replay of an event history as a Spark job.

The same report as the single-process replay (detect/replay.py), computed in steps:

1. Read and digest every event in the executors (digest is the expensive per-event step).
2. Global facts, small aggregates collected to the driver: each model's first use (the one piece
   of scorer state accounts share), each account's first event (the order the Detector keeps its
   accounts in), the earliest event of each grid cell (when the campaign jobs run, schedule.py).
3. Repartition by account, sort by event time (ties in input order) and keep that.
4. Pass 1 in the executors: per account, the campaign-row inputs at each job after it changed,
   and its report row as a replay without campaigns would give it.
5. The campaign jobs on the driver, in order, on those rows (jobs.py).
6. Pass 2 in the executors: the Detector per partition over the accounts the jobs touch (lifted,
   or sending a signature feature), with the jobs' lifts and signatures applied at their event
   times: first_flagged_ts, campaign and reasons; the other accounts keep pass 1's rows.
"""

from __future__ import annotations

import dataclasses
import functools
import pickle
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pyarrow as pa

from cuirass.detect.campaigns import CampaignResult
from cuirass.detect.engine import DEFAULT_CAMPAIGN_INTERVAL_S, DEFAULT_CAMPAIGN_WINDOW_S, threshold_from
from cuirass.detect.evidence import sigmoid
from cuirass.spark import passes
from cuirass.spark.jobs import RowInputs, Version, latest_campaigns, run_jobs
from cuirass.spark.schedule import Plan, job_times
from cuirass.spark.session import readable_errors
from cuirass.spark.source import read

Progress = Callable[[str], None]
# Events per partition, at most: pass 1's campaign rows come back to the driver one partition per Spark job
# (_versions_by_job), and each job's results must stay under spark.driver.maxResultSize (1 GiB by default). About
# 280 MB of rows per million events on the benchmark traffic: 10M events collected at once overran the limit, and
# held at once as Python objects, the driver's memory (15 GB).
EVENTS_PER_PARTITION = 1_000_000


@dataclasses.dataclass(slots=True)
class History:
    report: dict[str, Any]
    seconds: dict[str, float]  # wall time per step, for the benchmark's profile
    skipped_samples: list[str]  # the first few records that could not be read, and why


def run(
    spark: Any,
    paths: list[str],
    fmt: str,
    *,
    calibration: dict[str, Any] | None = None,
    campaign_interval_s: float = DEFAULT_CAMPAIGN_INTERVAL_S,
    campaign_window_s: float = DEFAULT_CAMPAIGN_WINDOW_S,
    partitions: int | None = None,
    progress: Progress | None = None,
) -> History:
    """Replay the events in `paths` on Spark and return the detection report (docs/architecture.md)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    say = progress or (lambda _: None)
    threshold = threshold_from(calibration)
    seconds: dict[str, float] = {}
    clock = [time.perf_counter()]

    def lap(step: str, note: str) -> None:
        now = time.perf_counter()
        took, clock[0] = now - clock[0], now
        seconds[step] = seconds.get(step, 0.0) + took
        say(f"{step}: {note} ({took:.1f} s)")

    with readable_errors("reading the events"):
        digested = read(spark, paths, fmt).mapInArrow(
            functools.partial(passes.digest_batches, fmt=fmt), passes.ddl(passes.DIGESTS)
        )
        digested = digested.persist(StorageLevel.MEMORY_AND_DISK)
        bad = digested.filter(F.col("error").isNotNull())
        skipped = bad.count()
        samples = [r["error"] for r in bad.select("error").limit(10).collect()] if skipped else []
    good = digested.filter(F.col("error").isNull()).drop("error")
    with readable_errors("scanning the events"):
        totals = good.agg(F.count(F.lit(1)).alias("n"), F.max("ts").alias("last")).collect()[0]
        lap("digest", f"{totals['n']:,} events digested, {skipped:,} skipped")
        first_seen = {r["model"]: r["first"] for r in good.groupBy("model").agg(F.min("ts").alias("first")).collect()}
        cells = good.groupBy(F.floor(F.col("ts") / campaign_interval_s)).agg(F.min("ts").alias("first")).collect()
        firsts = good.groupBy("account").agg(F.min(F.struct(*("ts", *passes.ORDER_COLUMNS))).alias("first")).collect()
    accounts = [r["account"] for r in sorted(firsts, key=lambda r: tuple(r["first"]))]
    plan = Plan(
        tuple(job_times((r["first"] for r in cells), campaign_interval_s)),
        first_seen,
        calibration,
        campaign_interval_s,
        campaign_window_s,
    )
    lap("facts", f"{len(accounts):,} accounts, {len(first_seen)} models, {len(plan.times)} campaign jobs")

    n_parts = partitions or max(2, 2 * spark.sparkContext.defaultParallelism, -(-totals["n"] // EVENTS_PER_PARTITION))
    by_account = (
        good.repartition(n_parts, "account")
        .sortWithinPartitions("ts", *passes.ORDER_COLUMNS)
        .select("account", "ts", "digest")
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    with readable_errors("pass 1 (campaign rows)"):
        versions = by_account.mapInArrow(
            functools.partial(passes.version_batches, plan=plan), passes.ddl(passes.VERSIONS)
        ).persist(StorageLevel.MEMORY_AND_DISK)
        job_versions = versions.filter(F.col("k") >= 0)
        n_versions = job_versions.count()
        base = _base_rows(versions.filter(F.col("k") < 0))
    digested.unpersist()
    lap("pass1", f"{n_versions:,} campaign-row versions")
    with readable_errors("the campaign jobs"):
        index = {a: i for i, a in enumerate(accounts)}
        by_job = _versions_by_job(job_versions, index, len(plan.times), n_parts, release=versions.unpersist)
        results = run_jobs(RowInputs(accounts, by_job), plan)
    lap("campaigns", f"{len(results)} campaign jobs")
    with readable_errors("pass 2 (verdicts)"):
        verdict_fn = functools.partial(passes.verdict_batches, plan=plan, results=results)
        touched = _collect(by_account.mapInArrow(verdict_fn, passes.ddl(passes.VERDICTS))).to_pylist()
    rows = list({**base, **{r["account"]: r for r in touched}}.values())
    lap("pass2", f"{len(touched):,} accounts touched by campaigns re-scored")
    by_account.unpersist()
    report = _report(rows, results, threshold, int(totals["n"]), totals["last"], len(plan.times))
    if skipped:
        report["summary"]["skipped"] = skipped
    return History(report, seconds, samples)


def _collect(df: Any) -> pa.Table:
    """A DataFrame as one Arrow table (toArrow is PySpark 4; 3.5 has the private equivalent)."""
    if hasattr(df, "toArrow"):
        return df.toArrow()
    return pa.Table.from_batches(df._collect_as_arrow())


def _base_rows(df: Any) -> dict[str, dict[str, Any]]:
    """Each account's campaign-free report row (pass 1's rows with k < 0), by account."""
    table = _collect(df.select("account", "blob"))
    return {a: orjson.loads(b) for a, b in zip(table.column("account").to_pylist(), table.column("blob").to_pylist())}


def _versions_by_job(
    df: Any, index: dict[str, int], n_jobs: int, parts: int, release: Callable[[], object]
) -> Iterator[list[tuple[int, Version]]]:
    """Pass 1's campaign-row versions, one list per job in job order (each sorted by account index), streamed: the
    versions are range-partitioned by job and collected one partition per Spark job, so the driver holds one
    partition's versions at a time and no job's results outgrow spark.driver.maxResultSize. Equal keys share a
    range partition, so once a partition is read, every job up to its last is complete. `release` is called once
    the range-partitioned copy is cached: pass 1's own cached rows are not needed after that."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    ranged = df.repartitionByRange(parts, "k").persist(StorageLevel.MEMORY_AND_DISK)
    ranged.count()  # caches every partition, so that pass 1's copy can go before the jobs run
    release()
    names = ("account", "k", "n", "last_ts", "own", "volume", "summary", "blob")
    pending: dict[int, list[tuple[int, Version]]] = {}
    k = 0
    try:
        for part in range(ranged.rdd.getNumPartitions()):
            table = _collect(ranged.filter(F.spark_partition_id() == part).select(*names))
            for account, job, n, last_ts, own, volume, summary, blob in zip(
                *(table.column(c).to_pylist() for c in names)
            ):
                version = Version(n, last_ts, own, volume, summary, pickle.loads(blob))
                pending.setdefault(job, []).append((index[account], version))
            del table
            last = max(pending, default=-1)
            yield from _in_order(pending, k, last + 1)
            k = max(k, last + 1)
    finally:
        ranged.unpersist()
    yield from _in_order(pending, k, n_jobs)


def _in_order(
    pending: dict[int, list[tuple[int, Version]]], start: int, stop: int
) -> Iterator[list[tuple[int, Version]]]:
    """The versions of jobs start..stop-1 taken out of `pending`, each job's sorted by account index."""
    for job in range(start, stop):
        yield sorted(pending.pop(job, []), key=lambda v: v[0])


def _report(
    rows: list[dict[str, Any]],
    results: list[CampaignResult],
    threshold: float,
    events: int,
    last_ts: float | None,
    runs: int,
) -> dict[str, Any]:
    """The report in Detector.report's shape; the campaigns part as Detector.campaign_report builds it."""
    rows.sort(key=lambda a: (-a["score"], a["account"]))
    members: dict[str, list[str]] = {}
    for row in rows:
        if row["campaign"] is not None:
            members.setdefault(row["campaign"], []).append(row["account"])
    latest = latest_campaigns(results)
    found = [
        {
            "id": cid,
            "accounts": sorted(members[cid]),
            "score": sigmoid(latest[cid].logit),
            "reasons": list(latest[cid].reasons),
            "signature": list(latest[cid].signature),
        }
        for cid in sorted(members, key=lambda c: (-len(members[c]), c))
    ]
    return {
        "accounts": rows,
        "campaigns": found,
        "threshold": threshold,
        "summary": {
            "events": events,
            "accounts": len(rows),
            "flagged": sum(1 for a in rows if a["flagged"]),
            "campaigns": len(found),
            "campaign_runs": runs,
            "last_ts": last_ts,
        },
    }

"""What Spark's Python workers run: digest events, then two passes over each partition's accounts.

Plain functions of Arrow record batches (Spark's `mapInArrow`), so they run, and are tested, without
Spark. A partition holds whole accounts (the job repartitions by account) with their events in
event-time order (stable: ties keep input order), which is the order one process would see them in
restricted to those accounts; since an account's score depends only on its own events (and on the
global `Plan`), the per-partition scorer reproduces the single-process one exactly.

- `digest_batches`: event records (JSON lines or Parquet rows) -> (account, ts, model, digest); a
  record that cannot be read or digested becomes a row with an `error` instead (skipped, counted).
- `version_batches` (pass 1): each account's campaign row inputs at the campaign jobs that follow
  its changes, and its report row as a replay without campaigns gives it. Own scores do not
  depend on campaigns, so this pass needs no campaign results.
- `verdict_batches` (pass 2): the real Detector over the partition's accounts that the campaign
  jobs (computed on the driver, jobs.py) touch, with their results applied at their event times:
  lifts, signatures, flags; their report rows come out. An account no job lifts and that never
  sends a signature feature has the same state with and without campaigns: pass 1's row stands.
"""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import orjson
import pyarrow as pa

from cuirass.detect.campaigns import HASHED_KINDS, CampaignResult
from cuirass.detect.digest import HISTORY_PROMPT_CACHE, Digest, cache_prompts, digest
from cuirass.detect.engine import Detector
from cuirass.detect.scoring import AccountState
from cuirass.events.formats import checked
from cuirass.events.record import Event
from cuirass.spark.schedule import Plan

JSON_COLUMNS = ("messages", "params", "response", "actions", "shadowed")  # JSON text in Parquet files
ORDER_COLUMNS = ("file", "block", "row")  # input order, to break ties in event time as a stable sort does
BATCH = 4096

DIGESTS = pa.schema(
    [
        ("account", pa.string()),
        ("ts", pa.float64()),
        ("model", pa.string()),
        ("file", pa.string()),
        ("block", pa.int64()),
        ("row", pa.int64()),
        ("digest", pa.binary()),
        ("error", pa.string()),
    ]
)
VERSIONS = pa.schema(
    [
        ("account", pa.string()),
        ("k", pa.int32()),  # campaign job index; -1: `blob` is the account's campaign-free report row
        ("n", pa.int64()),
        ("last_ts", pa.float64()),
        ("own", pa.float64()),
        ("volume", pa.float64()),
        ("summary", pa.list_(pa.float64())),
        ("blob", pa.binary()),  # the pickled linking features, or (k = -1) the report row as JSON
    ]
)
VERDICTS = pa.schema(
    [
        ("account", pa.string()),
        ("score", pa.float64()),
        ("flagged", pa.bool_()),
        ("first_flagged_ts", pa.float64()),
        ("campaign", pa.string()),
        ("reasons", pa.list_(pa.string())),
        ("score_now", pa.float64()),
        ("requests", pa.int64()),
    ]
)


def ddl(schema: pa.Schema) -> str:
    """The schema as Spark DDL (the return type mapInArrow wants)."""
    names = {pa.string(): "string", pa.float64(): "double", pa.int64(): "bigint", pa.int32(): "int"}
    names |= {pa.binary(): "binary", pa.bool_(): "boolean"}
    names |= {pa.list_(pa.float64()): "array<double>", pa.list_(pa.string()): "array<string>"}
    return ", ".join(f"`{f.name}` {names[f.type]}" for f in schema)


class _Out:
    """Rows collected column-wise and handed out as record batches of BATCH rows."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.columns: list[list[Any]] = [[] for _ in schema]

    def add(self, *values: Any) -> None:
        for column, value in zip(self.columns, values, strict=True):
            column.append(value)

    def full(self) -> bool:
        return len(self.columns[0]) >= BATCH

    def flush(self) -> Iterator[pa.RecordBatch]:
        if self.columns[0]:
            yield pa.RecordBatch.from_arrays(
                [pa.array(c, type=f.type) for c, f in zip(self.columns, self.schema)], schema=self.schema
            )
            self.columns = [[] for _ in self.schema]


# -- reading and digesting -------------------------------------------------------------------------


def event_of(record: dict[str, Any]) -> Event:
    """An Event from a decoded record; ValueError names what is wrong (the checks `detect run` makes)."""
    return checked(Event.from_dict(record))


def _jsonl_record(row: dict[str, Any]) -> dict[str, Any] | None:
    line = row["value"]
    if not line or not line.strip():
        return None  # blank lines are not events
    data = orjson.loads(line)
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object (one event per line)")
    return data


def _parquet_record(row: dict[str, Any]) -> dict[str, Any]:
    for name in JSON_COLUMNS:
        text = row.get(name)
        if isinstance(text, (str, bytes)):
            row[name] = orjson.loads(text)
    return row


def digest_batches(batches: Iterable[pa.RecordBatch], fmt: str) -> Iterator[pa.RecordBatch]:
    """Digest every record; those that cannot be read or digested come out with `error` set."""
    cache_prompts(HISTORY_PROMPT_CACHE)  # a Python worker digests many partitions of one history
    record_of: Callable[[dict[str, Any]], dict[str, Any] | None] = _jsonl_record if fmt == "jsonl" else _parquet_record
    out = _Out(DIGESTS)
    for batch in batches:
        for row in batch.to_pylist():
            where = (row["file"], row["block"], row["row"])
            try:
                record = record_of(row)
                if record is None:
                    continue
                d = digest(event_of(record))
            except Exception as exc:  # noqa: BLE001 - one malformed record must not stop the job
                out.add(None, None, None, *where, None, f"{row['file']}: {type(exc).__name__}: {str(exc)[:200]}")
            else:
                out.add(d.account, d.ts, d.model, *where, pickle.dumps(d, protocol=5), None)
            if out.full():
                yield from out.flush()
    yield from out.flush()


def _digests(batches: Iterable[pa.RecordBatch]) -> Iterator[Digest]:
    for batch in batches:
        for blob in batch.column("digest").to_pylist():
            yield pickle.loads(blob)


# -- pass 1: campaign row inputs -------------------------------------------------------------------


def version_batches(batches: Iterable[pa.RecordBatch], plan: Plan) -> Iterator[pa.RecordBatch]:
    """Pass 1 over a partition in event-time order: at each campaign job, the inputs of the
    campaign row (Detector.campaign_snapshot) of every account that changed since the previous
    job and is inside the window; at the end each account's report row without campaigns."""
    detector = Detector(plan.calibration, campaign_interval_s=plan.interval, campaign_window_s=plan.window)
    scorer = detector.scorer
    scorer.context.model_first_seen.update(plan.model_first_seen)
    times, window = plan.times, plan.window
    changed: dict[str, AccountState] = {}
    out = _Out(VERSIONS)
    k = 0

    def emit(k: int) -> None:
        since = times[k] - window
        for state in changed.values():
            if state.last_ts >= since:
                links = pickle.dumps(scorer.links(state), protocol=5)
                out.add(state.account, k, state.n, state.last_ts, state.own, state.volume, scorer.summary(state), links)
        changed.clear()

    for d in _digests(batches):
        while k < len(times) and times[k] <= d.ts:
            emit(k)
            k += 1
        detector.observe_digest(d)
        state = scorer.accounts[d.account]
        changed[state.account] = state
        if out.full():
            yield from out.flush()
    if k < len(times):
        emit(k)  # the first job after the partition's last event; nothing changes after it
    for row in detector.report()["accounts"]:
        out.add(row["account"], -1, row["requests"], None, None, None, None, orjson.dumps(row))
        if out.full():
            yield from out.flush()
    yield from out.flush()


# -- pass 2: verdicts ------------------------------------------------------------------------------


def verdict_batches(
    batches: Iterable[pa.RecordBatch], plan: Plan, results: Sequence[CampaignResult]
) -> Iterator[pa.RecordBatch]:
    """Pass 2: the Detector over the partition's accounts that campaigns touch, in event-time order,
    with each campaign job's result applied when event time reaches it, as Detector.run_campaigns
    would. The job considered every account inside its window; here those of this partition."""
    digests = list(_digests(batches))
    keys, payments = signature_features(results)
    touched = {account for result in results for account in result.lifts}
    touched.update(
        d.account
        for d in digests
        if d.payment in payments or d.system_key in keys or not keys.isdisjoint(d.keys) or not keys.isdisjoint(d.near)
    )
    detector = Detector(plan.calibration, campaign_interval_s=plan.interval, campaign_window_s=plan.window)
    detector.scorer.context.model_first_seen.update(plan.model_first_seen)
    k = 0

    def apply(result: CampaignResult) -> None:
        since = result.now - plan.window
        considered = [s.account for s in detector.scorer if s.last_ts >= since]
        detector.apply_campaigns(dataclasses.replace(result, considered=considered))

    for d in digests:
        if d.account not in touched:
            continue
        while k < len(results) and results[k].now <= d.ts:
            apply(results[k])
            k += 1
        detector.observe_digest(d)
    for result in results[k:]:
        apply(result)
    out = _Out(VERDICTS)
    for row in detector.report()["accounts"]:
        out.add(*(row[f.name] for f in VERDICTS))
        if out.full():
            yield from out.flush()
    yield from out.flush()


def signature_features(results: Sequence[CampaignResult]) -> tuple[set[int], set[str]]:
    """(template, near-duplicate and system-prompt keys, payment fingerprints) of every campaign signature, parsed
    as Detector.apply_campaigns parses them: a request carrying none of them attaches to no campaign."""
    keys: set[int] = set()
    payments: set[str] = set()
    for result in results:
        for feature in result.signatures:
            kind, _, value = feature.partition(":")
            if kind in HASHED_KINDS:  # templates, near-duplicate phrasings, system prompts
                keys.add(int(value, 16))
            elif kind == "pay":
                payments.add(value)
    return keys, payments

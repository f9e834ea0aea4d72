"""A Detector's state as bytes, one account at a time, so a detector shard can checkpoint only what changed.

    dump_account(detector, account) -> bytes     the account's state and its cached campaign row
    load_account(detector, blob)                 put it back (into a fresh or restored detector)
    dump_shared(detector) / load_shared(...)     what is not per account: campaigns and their signatures,
                                                 the first-seen time of each model, counters

A cached campaign row holds feature ids interned in the detector's FeatureIndex; they are stored as the
features themselves and interned again on load, so a restored detector needs no copy of the index.

The format is pickle (~1-3 kB per account compressed): only Cuirass writes these blobs, to its own database.
The states are objects with fixed fields, plain Python or compiled by mypyc (cuirass.compiled), and the two
builds pickle such objects differently; each is written here as its class and a dict of its fields, so that
a shard of either build takes over the other's partitions. A blob from another version of the signals may not load:
`load_account` then raises and the shard starts that partition afresh (services.partition).
"""

from __future__ import annotations

import functools
import io
import pickle
import zlib
from typing import Any

import numpy as np

from cuirass.detect.campaigns import AccountRow
from cuirass.detect.engine import Detector

FORMAT = 3  # 2: fixed-field objects as (class, fields), the same from a compiled and a pure build; 3: Campaign.binding


@functools.cache  # one walk per class, not per object pickled
def _fields(cls: type) -> tuple[str, ...]:
    """A fixed-field class's fields: mypyc lists a compiled class's; a Python class declares __slots__."""
    names = getattr(cls, "__mypyc_attrs__", None)
    if names is None:
        names = tuple(n for c in reversed(cls.__mro__) for n in c.__dict__.get("__slots__", ()))
    return tuple(n for n in names if n not in ("__dict__", "__weakref__"))


def _restore(cls: type[object], fields: dict[str, Any]) -> object:
    obj = cls.__new__(cls)
    for name, value in fields.items():
        setattr(obj, name, value)
    return obj


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        cls: type = type(obj)
        names = _fields(cls) if cls.__module__.startswith("cuirass.detect.") else ()
        if not names:
            return NotImplemented
        return _restore, (cls, {n: getattr(obj, n) for n in names if hasattr(obj, n)})


def _pack(value: Any) -> bytes:
    out = io.BytesIO()
    _Pickler(out, protocol=pickle.HIGHEST_PROTOCOL).dump((FORMAT, value))
    return zlib.compress(out.getvalue(), 1)


def _unpack(blob: bytes) -> Any:
    fmt, value = pickle.loads(zlib.decompress(blob))  # our own database, written by this module
    if fmt != FORMAT:
        raise ValueError(f"detector checkpoint format {fmt}, this Cuirass reads {FORMAT}")
    return value


def dump_account(detector: Detector, account: str, extra: Any = None) -> bytes:
    """One account's state, its cached campaign row (features spelt out) and the caller's `extra`."""
    state = detector.scorer.accounts[account]
    row = detector._rows.get(account)
    cached = None
    if row is not None:
        features = [detector._features.features[f] for f in row.features.tolist()]
        cached = (row.own, row.summary, features, row.volume, row.built_ts)
    return _pack((state, cached, extra))


def load_account(detector: Detector, blob: bytes) -> tuple[str, Any]:
    """Install an account from `dump_account`; returns (account, extra)."""
    state, cached, extra = _unpack(blob)
    detector.scorer.accounts[state.account] = state
    if cached is not None:
        own, summary, features, volume, built_ts = cached
        ids = np.array([detector._features.intern([f])[0] for f in features], dtype=np.int64)
        detector._rows[state.account] = AccountRow(state.account, own, summary, np.sort(ids), volume, built_ts)
    return state.account, extra


def dump_shared(detector: Detector) -> bytes:
    return _pack(
        {
            "campaigns": detector.campaigns,
            "signed": detector._signed,
            "standing": detector._standing,
            "known": list(detector._remembered.values()),
            "models": detector.scorer.context.model_first_seen,
            "events": detector.events,
            "last_ts": detector.last_ts,
            "campaign_runs": detector.campaign_runs,
        }
    )


def load_shared(detector: Detector, blob: bytes) -> None:
    shared = _unpack(blob)
    detector.campaigns = shared["campaigns"]
    detector._standing = shared.get("standing", {})  # absent from checkpoints of earlier versions
    detector.scorer.context.model_first_seen = shared["models"]
    detector.events = shared["events"]
    detector.last_ts = shared["last_ts"]
    detector.campaign_runs = shared["campaign_runs"]
    old = shared.get("job_signatures", {})  # earlier versions kept the last job's alone, without its time
    detector._signed = shared.get("signed") or {f: (cid, detector.last_ts or 0.0) for f, cid in old.items()}
    detector._remembered = {}
    detector.remember(shared.get("known", []))  # rebuilds the signature tables: recent jobs' and known networks'


def row_features(detector: Detector, row: AccountRow) -> list[list[Any]]:
    """A campaign row's features as [kind, value] pairs, in the order this detector interned them."""
    return [list(detector._features.features[f]) for f in row.features.tolist()]

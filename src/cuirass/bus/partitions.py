"""Reading the event stream one partition at a time, in stream order, from a given sequence.

A detector shard (`services.shards`) reads each partition it owns through a JetStream *ordered consumer*
(ephemeral, filter subject `cuirass.events.<p>`, no acknowledgements, delivery from a stream sequence): the
server pushes the partition's events in order, nats-py re-creates the consumer from the last sequence it
delivered if a message is lost or heartbeats stop, and flow control holds the server back while the shard
has not taken what it was sent. Progress lives in the shard's checkpoints, not in the stream: a shard that
takes a partition over opens a new consumer at its checkpoint's sequence + 1.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy

from cuirass.bus.jetstream import Connection, subject_of


@dataclasses.dataclass(frozen=True, slots=True)
class Message:
    seq: int  # stream sequence
    published: float  # when the stream stored it (Unix seconds)
    data: bytes


@dataclasses.dataclass(slots=True)
class _Open:
    sub: object  # nats JetStreamContext.PushSubscription
    pending: int  # what the server still had for this consumer after the last message taken


class PartitionReader:
    """Ordered consumers of the partitions a shard owns, drained in batches from the shard's thread."""

    def __init__(self, url: str, stream: str) -> None:
        self.conn = Connection(url, stream, name="cuirass-shard")
        self._open: dict[int, _Open] = {}

    def open(self, partition: int, start_seq: int) -> None:
        """Start reading a partition at stream sequence `start_seq` (its checkpoint's + 1)."""
        self.close(partition)

        async def subscribe() -> _Open:
            js = await self.conn.js()
            config = ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=max(start_seq, 1), inactive_threshold=60.0
            )
            sub = await js.subscribe(
                subject_of(partition, self.conn.stream),
                stream=self.conn.stream,
                ordered_consumer=True,
                config=config,
                idle_heartbeat=2.0,
            )
            info = await sub.consumer_info()
            return _Open(sub, int(info.num_pending or 0))

        self._open[partition] = self.conn.call(subscribe, 15.0)

    def close(self, partition: int) -> None:
        """Stop reading a partition (it was given away or lost)."""
        opened = self._open.pop(partition, None)
        if opened is None:
            return

        async def unsubscribe() -> None:
            await opened.sub.unsubscribe()  # type: ignore[attr-defined]

        try:
            self.conn.call(unsubscribe, 5.0)
        except Exception:  # noqa: BLE001 - the consumer is ephemeral: the server drops it when idle anyway
            pass

    def caught_up(self, partition: int) -> bool:
        """Whether the shard has taken every message the stream held for this partition (so far)."""
        opened = self._open.get(partition)
        return opened is not None and opened.pending == 0 and opened.sub.pending_msgs == 0  # type: ignore[attr-defined]

    def take(self, wants: dict[int, int], wait: float) -> dict[int, list[Message]]:
        """Up to `wants[p]` messages of each open partition p, waiting at most `wait` seconds when none is
        there yet; returns the partitions that had any."""

        async def drain() -> dict[int, list[Message]]:
            deadline = time.monotonic() + wait
            while True:
                out: dict[int, list[Message]] = {}
                for partition, n in wants.items():
                    opened = self._open.get(partition)
                    if opened is None or n <= 0:
                        continue
                    sub = opened.sub
                    got: list[Message] = []
                    while len(got) < n and sub.pending_msgs > 0:  # type: ignore[attr-defined]
                        msg: Msg = await sub.next_msg(timeout=1.0)  # type: ignore[attr-defined]
                        meta = msg.metadata
                        opened.pending = int(meta.num_pending or 0)
                        got.append(Message(int(meta.sequence.stream), meta.timestamp.timestamp(), msg.data))
                    if got:
                        out[partition] = got
                if out or time.monotonic() >= deadline:
                    return out
                await asyncio.sleep(0.01)

        return self.conn.call(drain, wait + 30.0)

    def close_all(self) -> None:
        for partition in list(self._open):
            self.close(partition)
        self.conn.close()

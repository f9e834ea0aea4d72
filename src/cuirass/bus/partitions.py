"""Reading the event stream one partition at a time, in stream order, from a given sequence.

A detector shard (`services.shards`) reads each partition it owns through a JetStream *ordered consumer*
(ephemeral, filter subject `cuirass.events.<p>`, no acknowledgements, delivery from a stream sequence): the
server pushes the partition's events in order, nats-py re-creates the consumer from the last sequence it
delivered if a message is lost or heartbeats stop, and flow control holds the server back while the shard
has not taken what it was sent.

Messages are handed over in bulk: the subscription's callback (on the connection's loop) appends each one
to the partition's buffer, and the shard's thread takes from the buffers directly, with no call into the
loop per message or per batch. The callback waits while a buffer holds `BUFFER` messages, so the server's
flow control holds the stream back until the shard catches up, and memory stays bounded on a long backlog.

Progress lives in the shard's checkpoints, not in the stream: a shard that
takes a partition over opens a new consumer at its checkpoint's sequence + 1.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import threading

from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy

from cuirass.bus.jetstream import Connection, subject_of


@dataclasses.dataclass(frozen=True, slots=True)
class Message:
    seq: int  # stream sequence
    published: float  # when the stream stored it (Unix seconds)
    data: bytes


BUFFER = 4000  # messages held per partition before the callback stops taking more from the server


@dataclasses.dataclass(slots=True)
class _Open:
    sub: object  # nats JetStreamContext.PushSubscription
    pending: int  # what the server still had for this consumer after the last message delivered
    buffer: collections.deque[Message]  # delivered, not yet taken by the shard


class PartitionReader:
    """Ordered consumers of the partitions a shard owns, drained in batches from the shard's thread."""

    def __init__(self, url: str, stream: str) -> None:
        self.conn = Connection(url, stream, name="cuirass-shard")
        self._open: dict[int, _Open] = {}
        self._arrived = threading.Event()  # set by the callback when a message is buffered

    def open(self, partition: int, start_seq: int) -> None:
        """Start reading a partition at stream sequence `start_seq` (its checkpoint's + 1)."""
        self.close(partition)

        buffer: collections.deque[Message] = collections.deque()
        arrived = self._arrived

        async def on_message(msg: Msg) -> None:
            meta = msg.metadata
            opened.pending = int(meta.num_pending or 0)
            buffer.append(Message(int(meta.sequence.stream), meta.timestamp.timestamp(), msg.data))
            arrived.set()
            # The shard is behind: leave the rest with the server. (Polled: the buffer is emptied from another
            # thread, which would otherwise need a thread-safe wake-up for every batch it takes.)
            while len(buffer) >= BUFFER:  # noqa: ASYNC110
                await asyncio.sleep(0.01)

        async def subscribe() -> None:
            js = await self.conn.js()
            config = ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=max(start_seq, 1), inactive_threshold=60.0
            )
            opened.sub = await js.subscribe(
                subject_of(partition, self.conn.stream),
                stream=self.conn.stream,
                cb=on_message,
                ordered_consumer=True,
                config=config,
                idle_heartbeat=2.0,
            )
            info = await opened.sub.consumer_info()
            if not buffer:
                opened.pending = int(info.num_pending or 0)

        opened = _Open(None, 1, buffer)
        self.conn.call(subscribe, 15.0)
        self._open[partition] = opened

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
        return (
            opened is not None and opened.pending == 0 and not opened.buffer and opened.sub.pending_msgs == 0  # type: ignore[attr-defined]
        )

    def take(self, wants: dict[int, int], wait: float) -> dict[int, list[Message]]:
        """Up to `wants[p]` messages of each open partition p, waiting at most `wait` seconds when none is
        there yet; returns the partitions that had any."""
        self._arrived.clear()
        out = self._drain(wants)
        if not out and wait > 0 and self._arrived.wait(wait):
            out = self._drain(wants)
        return out

    def _drain(self, wants: dict[int, int]) -> dict[int, list[Message]]:
        out: dict[int, list[Message]] = {}
        for partition, n in wants.items():
            opened = self._open.get(partition)
            if opened is None or n <= 0 or not opened.buffer:
                continue
            buffer = opened.buffer
            got = [buffer.popleft() for _ in range(min(n, len(buffer)))]
            out[partition] = got
        return out

    def close_all(self) -> None:
        for partition in list(self._open):
            self.close(partition)
        self.conn.close()

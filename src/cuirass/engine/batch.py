"""Batched decoding: every running choice advances together, one forward pass per step for all of them.

    admit(choice)  prefill its prompt alone (B=1), sample its first token, then join the batch: the KV
                   caches are left-padded to a common length and stacked, the attention mask hides the pads
                   and each row keeps its own position ids, so a row computes what it would compute alone
                   (logits equal up to float rounding: 2e-6 on the reference model)
    step()         one forward pass over the last token of every row; per row: its own processors (the
                   policy's defenses), its own sampler and seeded generator; finished, failed and cancelled
                   rows leave the batch, and cache columns that only hold pads are dropped

A processor with a `batch_key` (antidistill: its proxy models) is applied to every row that holds one with
the same key in a single call, `type(proc).call_many(procs, ids, scores)`, so its own model runs once per step
for all of them; processors still apply in each row's order, stage by stage.

Choices join between steps, whenever a row is free ("continuous batching", Yu et al., 2022, "Orca: A
Distributed Serving System for Transformer-Based Generative Models", OSDI), so a short answer never waits
for a long one. On a CPU a step costs little more for 16 rows than for one (the reference model: about 320
tokens/s alone, 1,400 with 16 rows, BENCHMARKS.md), which is what makes serving many users affordable.

A model whose cache is not a plain per-layer key/value cache (sliding windows, state-space layers) runs one
choice at a time through the same code. `Scheduler` is the thread that owns the model and runs the loop.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

import torch

from cuirass.engine.generate import Choice, ChoiceRun
from cuirass.engine.kv import from_layers, layers, pad_left, stack, stackable
from cuirass.engine.loader import EngineError, LoadedModel, returned_cache
from cuirass.engine.params import EngineRequest
from cuirass.engine.sampling import Processor, pick

Finished = list[tuple[ChoiceRun, "Choice | BaseException"]]


class _Row:
    __slots__ = ("run", "ids", "n", "gen")

    def __init__(self, run: ChoiceRun, device: Any) -> None:
        prompt = run.req.prompt_ids
        self.run = run
        self.ids = torch.empty((1, len(prompt) + run.req.params.max_tokens), dtype=torch.long, device=device)
        self.ids[0, : len(prompt)] = torch.tensor(prompt, dtype=torch.long, device=device)
        self.n = len(prompt)  # tokens in `ids`: the prompt, then every sampled token (the last not yet cached)
        t = run.req.params.temperature
        self.gen = torch.Generator(device=device).manual_seed(run.seed) if t > 0 else None


class Batch:
    """The running choices of one model. Not thread-safe: one thread (the Scheduler's) drives it."""

    def __init__(self, lm: LoadedModel, max_rows: int) -> None:
        self.lm = lm
        self.max_rows = max_rows
        self.rows: list[_Row] = []
        self.cache: Any = None
        self.mask: torch.Tensor | None = None  # [rows, cache length], 1 for a real token, 0 for a pad

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def full(self) -> bool:
        return len(self.rows) >= self.max_rows

    def _forward(
        self, ids: torch.Tensor, cache: Any, mask: torch.Tensor | None, positions: torch.Tensor | None
    ) -> tuple[torch.Tensor, Any]:
        lm = self.lm
        kw: dict[str, Any] = {lm.cache_arg: cache, "use_cache": True}
        if lm.keeps_last:
            kw["logits_to_keep"] = 1
        if mask is not None:
            kw["attention_mask"], kw["position_ids"] = mask, positions
        out = lm.model(input_ids=ids, **kw)
        return out.logits[:, -1, :].float(), returned_cache(out, lm.cache_arg)

    def _process(self, rows: list[_Row], scores: torch.Tensor) -> tuple[list[torch.Tensor | None], Finished]:
        """Every row's processors in its own order, stage by stage, batchable ones one call per key; returns
        each row's scores (None for a row whose processor failed) and the failures."""
        out: list[torch.Tensor | None] = [scores[i : i + 1] for i in range(len(rows))]
        failed: Finished = []
        for k in range(max((len(r.run.processors) for r in rows), default=0)):
            # (processor class, batch_key) -> the rows of this group and their scores so far; the class is
            # any processor's, so its `call_many` is only known to exist because the processor has a batch_key
            groups: dict[tuple[type[Any], Any], list[tuple[int, torch.Tensor]]] = {}
            for i, row in enumerate(rows):
                cur = out[i]
                if k >= len(row.run.processors) or cur is None:
                    continue
                proc = row.run.processors[k]
                key = getattr(proc, "batch_key", None)
                if key is not None:
                    groups.setdefault((type(proc), key), []).append((i, cur))
                    continue
                try:
                    out[i] = proc(row.ids[:, : row.n], cur)
                except Exception as exc:  # noqa: BLE001 - this row fails, the others go on
                    out[i] = None
                    failed.append((row.run, exc))
            for (cls, _), members in groups.items():
                idx = [i for i, _ in members]
                try:
                    res = cls.call_many(
                        [rows[i].run.processors[k] for i in idx],
                        [rows[i].ids[:, : rows[i].n] for i in idx],
                        torch.cat([s for _, s in members]),
                    )
                except Exception as exc:  # noqa: BLE001 - the rows of this group fail
                    for i in idx:
                        out[i] = None
                        failed.append((rows[i].run, exc))
                    continue
                for j, i in enumerate(idx):
                    out[i] = res[j : j + 1]
        return out, failed

    def _sample(self, row: _Row, scores: torch.Tensor) -> bool:
        """Sampler, then the text side; True when the choice is over."""
        params = row.run.req.params
        tok = pick(scores, params.temperature, params.top_p, row.gen)
        row.ids[0, row.n] = tok
        row.n += 1
        return row.run.push(tok)

    @torch.inference_mode()
    def admit(self, run: ChoiceRun) -> Finished:
        """Prefill and sample the first token; the choice joins the batch unless it is already over."""
        if run.cancel.is_set():
            return [(run, run.result(cancelled=True))]
        row = _Row(run, self.lm.device)
        try:
            scores, cache = self._forward(row.ids[:, : row.n], None, None, None)
            (processed,), failed = self._process([row], scores)
            if failed:
                return failed
            assert processed is not None
            if self._sample(row, processed):
                return [(run, run.result())]
        except Exception as exc:  # noqa: BLE001 - this choice fails, the others go on
            return [(run, exc)]
        if not stackable(cache):
            self.max_rows = 1
        mask = torch.ones((1, row.n - 1), dtype=torch.long, device=self.lm.device)
        if self.cache is None:
            self.cache, self.mask = cache, mask
        else:
            assert self.mask is not None
            width = max(self.mask.shape[1], mask.shape[1])
            a, b = width - self.mask.shape[1], width - mask.shape[1]
            self.cache = stack([layers(self.cache), layers(cache)], [a, b])
            self.mask = torch.cat([pad_left(self.mask, a, 1), pad_left(mask, b, 1)])
        self.rows.append(row)
        return []

    @torch.inference_mode()
    def step(self) -> Finished:
        """Advance every row by one token; return the choices that ended (or failed, or were cancelled)."""
        done: Finished = [(r.run, r.run.result(cancelled=True)) for r in self.rows if r.run.cancel.is_set()]
        if done:
            self._keep([i for i, r in enumerate(self.rows) if not r.run.cancel.is_set()])
        if not self.rows:
            return done
        assert self.mask is not None
        dev = self.lm.device
        mask = torch.cat([self.mask, torch.ones((len(self.rows), 1), dtype=torch.long, device=dev)], dim=1)
        last = torch.stack([r.ids[0, r.n - 1] for r in self.rows]).unsqueeze(1)
        positions = torch.tensor([[r.n - 1] for r in self.rows], dtype=torch.long, device=dev)
        scores, self.cache = self._forward(last, self.cache, mask, positions)
        self.mask = mask
        processed, failed = self._process(self.rows, scores)
        done += failed
        keep = []
        for i, row in enumerate(self.rows):
            row_scores = processed[i]
            if row_scores is None:
                continue
            try:
                over = self._sample(row, row_scores)
            except Exception as exc:  # noqa: BLE001 - this row only
                done.append((row.run, exc))
                continue
            if over:
                done.append((row.run, row.run.result()))
            else:
                keep.append(i)
        if len(keep) < len(self.rows):
            self._keep(keep)
        return done

    def abort(self, exc: BaseException) -> Finished:
        """Every row fails with `exc` (a forward pass failed) and the batch starts empty."""
        done: Finished = [(r.run, exc) for r in self.rows]
        self._keep([])
        return done

    def _keep(self, idx: list[int]) -> None:
        self.rows = [self.rows[i] for i in idx]
        if not self.rows:
            self.cache = self.mask = None
            return
        assert self.mask is not None
        sel = torch.tensor(idx, dtype=torch.long, device=self.lm.device)
        mask = self.mask.index_select(0, sel)
        start = int((mask.sum(dim=0) > 0).nonzero()[0])  # columns before this hold pads only
        self.mask = mask[:, start:]
        self.cache = from_layers(
            [
                (k.index_select(0, sel)[:, :, start:], v.index_select(0, sel)[:, :, start:])
                for k, v in layers(self.cache)
            ]
        )


class Scheduler:
    """The thread that owns a model: loads it, then admits waiting choices between steps and steps the rest.

    `loaded` resolves when the weights are in memory (or with the load error); `submit` queues a choice and
    returns a Future of its Choice. Choices wait (first come, first served) while `max_rows` are running.
    """

    def __init__(self, load: Callable[[], LoadedModel], max_rows: int, name: str = "cuirass-engine") -> None:
        self.loaded: Future[LoadedModel] = Future()
        self._load = load
        self._max_rows = max_rows
        self._pending: collections.deque[ChoiceRun] = collections.deque()
        self._futures: dict[ChoiceRun, Future[Choice]] = {}
        self._cond = threading.Condition()
        self._closed = False
        self.steps = 0  # forward passes over the batch, and rows they advanced: rows / steps = mean batch size
        self.rows = 0
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def submit(self, run: ChoiceRun) -> Future[Choice]:
        fut: Future[Choice] = Future()
        fut.set_running_or_notify_cancel()  # settled only by the scheduler (the caller cancels via run.cancel)
        with self._cond:
            if self._closed:
                fut.set_exception(EngineError("the local engine is stopped", status=503))
                return fut
            self._futures[run] = fut
            self._pending.append(run)
            self._cond.notify()
        return fut

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()

    def _settle(self, finished: Finished) -> None:
        for run, outcome in finished:
            with self._cond:
                fut = self._futures.pop(run)
            if isinstance(outcome, BaseException):
                fut.set_exception(outcome)
            else:
                fut.set_result(outcome)

    def _main(self) -> None:
        lm: LoadedModel | None = None
        try:
            lm = self._load()
        except BaseException as exc:  # noqa: BLE001 - reported through `loaded` and every waiting choice
            self.loaded.set_exception(exc)
        else:
            self.loaded.set_result(lm)
        batch = Batch(lm, self._max_rows) if lm is not None else None
        while True:
            with self._cond:
                while not self._closed and not self._pending and not batch:
                    self._cond.wait()
                if self._closed or batch is None:
                    break
                run = self._pending.popleft() if self._pending and not batch.full else None
            if run is not None:
                self._settle(batch.admit(run))
                continue  # admit everyone who is waiting before the next step
            self.steps += 1
            self.rows += len(batch)
            try:
                self._settle(batch.step())
            except Exception as exc:  # noqa: BLE001 - the forward pass failed: every running choice fails
                self._settle(batch.abort(exc))
        stopped = EngineError("the local engine is stopped", status=503)
        if batch is not None:
            self._settle(batch.abort(stopped))
        with self._cond:
            pending, self._pending = list(self._pending), collections.deque()
            self._closed = True
        load_error = self.loaded.exception() if self.loaded.done() and lm is None else None
        err = stopped if load_error is None else load_error
        self._settle([(run, err) for run in pending])


def run_choice(
    lm: LoadedModel,
    req: EngineRequest,
    index: int,
    processors: Sequence[Processor],
    cancel: threading.Event,
    emit: Callable[[int, str], None] | None = None,
) -> Choice:
    """Generate choice `index` (seed + index) alone; `emit(index, delta)` receives text as it settles. A
    failure (a processor that raised) is raised here."""
    batch = Batch(lm, max_rows=1)
    run = ChoiceRun(lm, req, index, processors, cancel, emit)
    done = batch.admit(run)
    while not done:
        done = batch.step()
    outcome = done[0][1]
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome

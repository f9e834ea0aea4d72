"""The local engine behind the Upstream interface: same routes, same response shapes as a remote server.

Generation runs in one engine thread per model (cuirass.engine.batch.Scheduler), never on the event
loop: up to `max_concurrency` choices are decoded together as one batch, more wait their turn. Streaming
hands text deltas from the engine thread to the loop through a queue; each batch the gateway relays is
everything that arrived together. A client that hangs up cancels its generation at the next token.
Logits processors (chosen per request by the policy) are built with this model's tokenizer, off the
event loop, and run inside the sampling step of their own row. For a model configured with a reasoning parser,
chat completions carry its reasoning block as `reasoning_content` (cuirass.engine.reasoning); `/v1/completions`
returns the raw text.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any

from cuirass.config import UpstreamConfig
from cuirass.engine.reasoning import ThinkParser, split
from cuirass.upstream.base import ProcessorFactory, UpstreamError

CHAT = "/v1/chat/completions"
_END = object()


def _error(exc: Exception) -> UpstreamError:
    """EngineError -> an OpenAI-style error the gateway passes on (400) or reports as a failure (5xx)."""
    from cuirass.engine.loader import EngineError

    if isinstance(exc, EngineError):
        body = {"error": {"message": exc.message, "type": "invalid_request_error", "param": exc.param, "code": None}}
        return UpstreamError("http", exc.message, status=exc.status, body=body)
    return UpstreamError("protocol", f"local engine failed: {type(exc).__name__}: {exc}")


class LocalUpstream:
    runs_processors = True

    def __init__(self, name: str, config: UpstreamConfig) -> None:
        assert config.path is not None
        self.name = name
        self.config = config
        self._engine: Any = None  # cuirass.engine.batch.Scheduler, once started

    async def start(self) -> None:
        """Check the model is there, then load it in the background: the gateway is live at once and
        the first requests wait for the model (the load is the first job of the engine thread)."""
        if self._engine is not None:
            return
        from cuirass.engine.batch import Scheduler
        from cuirass.engine.loader import load_model, resolve_path

        if importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None:
            raise UpstreamError("connect", "a local upstream needs the engine extra: pip install 'cuirass[engine]'")
        c = self.config
        if not (resolve_path(str(c.path)) / "config.json").is_file():
            raise UpstreamError(
                "connect",
                f"local model {c.path!r}: no Hugging Face model at {resolve_path(str(c.path))} (config.json missing)",
            )
        self._engine = Scheduler(
            lambda: load_model(str(c.path), c.device, c.dtype, c.threads),
            c.max_concurrency,
            name=f"cuirass-engine-{self.name}",
        )

    async def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    async def list_models(self) -> list[str]:
        return [self.config.model or self.served_name]

    @property
    def served_name(self) -> str:
        from cuirass.engine.loader import resolve_path

        return resolve_path(str(self.config.path)).name

    def load_state(self) -> dict[str, str]:
        """`loading` until the weights are in memory, then `ready`, or `failed` with the reason."""
        if self._engine is None:
            return {"state": "stopped"}
        loading = self._engine.loaded
        if not loading.done():
            return {"state": "loading"}
        exc = loading.exception()
        return {"state": "failed", "error": str(exc)} if exc is not None else {"state": "ready"}

    async def _lm(self) -> Any:
        """The loaded model (waits for the load); EngineError if it failed."""
        from cuirass.engine.loader import EngineError

        if self._engine is None:
            raise UpstreamError("connect", f"local model {self.config.path!r} is not started")
        try:
            return await asyncio.wrap_future(self._engine.loaded)
        except EngineError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported with the model's path
            raise EngineError(f"local model {self.config.path!r} could not be loaded: {exc}", status=500) from None

    async def _run(
        self,
        endpoint: str,
        body: dict[str, Any],
        processors: Sequence[ProcessorFactory] | None,
        cancel: threading.Event,
        emit: Callable[[int, str], None] | None,
    ) -> tuple[Any, list[Any]]:
        """Parse and build processors in a worker thread (a processor may load a model), then queue every
        choice on the engine and wait for all of them."""
        from cuirass.engine.generate import ChoiceRun
        from cuirass.engine.params import parse

        lm = await self._lm()
        engine = self._engine

        def prepare() -> tuple[Any, list[ChoiceRun]]:
            req = parse(lm, endpoint, body)
            return req, [
                ChoiceRun(lm, req, i, [make(lm.tokenizer) for make in processors or ()], cancel, emit)
                for i in range(req.params.n)
            ]  # fresh processor state per choice

        req, runs = await asyncio.to_thread(prepare)
        futures = [engine.submit(run) for run in runs]
        return req, [await asyncio.wrap_future(f) for f in futures]

    async def complete(
        self, endpoint: str, body: dict[str, Any], *, processors: Sequence[ProcessorFactory] | None = None
    ) -> dict[str, Any]:
        cancel = threading.Event()
        try:
            req, choices = await self._run(endpoint, body, processors, cancel, None)
        except asyncio.CancelledError:
            cancel.set()  # the engine drops the choice at its next step
            raise
        except UpstreamError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise _error(exc) from None
        chat = endpoint == CHAT
        out = []
        for c in choices:
            if chat:
                message: dict[str, Any] = {"role": "assistant", "content": c.text}
                if self.config.reasoning_parser:
                    message["reasoning_content"], message["content"] = split(c.text, self.config.reasoning_parser)
                out.append({"index": c.index, "message": message, "logprobs": None, "finish_reason": c.finish_reason})
            else:
                out.append({"index": c.index, "text": c.text, "logprobs": None, "finish_reason": c.finish_reason})
        return {
            "id": _id(chat),
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": body.get("model") or self.served_name,
            "choices": out,
            "usage": _usage(req, choices),
        }

    async def stream(
        self, endpoint: str, body: dict[str, Any], *, processors: Sequence[ProcessorFactory] | None = None
    ) -> AsyncGenerator[list[dict[str, Any]], None]:
        """Chunks as OpenAI sends them: role, content deltas, finish, then usage (if asked)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancel = threading.Event()

        def put(item: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is gone (shutdown): nobody is listening
                cancel.set()

        fut = asyncio.ensure_future(self._run(endpoint, body, processors, cancel, lambda i, d: put((i, d))))
        fut.add_done_callback(lambda f: queue.put_nowait(_END))
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved even if nobody listens
        chat = endpoint == CHAT
        rid, created, model = _id(chat), int(time.time()), body.get("model") or self.served_name
        usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(choices: list[dict[str, Any]], use: dict[str, int] | None = None) -> dict[str, Any]:
            c: dict[str, Any] = {
                "id": rid,
                "object": "chat.completion.chunk" if chat else "text_completion",
                "created": created,
                "model": model,
                "choices": choices,
            }
            if usage:
                c["usage"] = use
            return c

        parsers: dict[int, ThinkParser] = {}  # per choice, when the model reasons (chat only)

        def parts(i: int, text: str | None, finish: str | None) -> list[dict[str, Any]]:
            """The chunks' choices for one delta (None: the end): reasoning first, then content."""
            if not chat:
                return [{"index": i, "text": text or "", "logprobs": None, "finish_reason": finish}]
            deltas: list[dict[str, str]] = []
            if not self.config.reasoning_parser:
                deltas = [{"content": text}] if text is not None else []
            else:
                parser = parsers.setdefault(i, ThinkParser())
                reasoning, content = parser.feed(text) if text is not None else parser.finish()
                deltas = [{k: v} for k, v in (("reasoning_content", reasoning), ("content", content)) if v]
            out: list[dict[str, Any]] = [
                {"index": i, "delta": d, "logprobs": None, "finish_reason": None} for d in deltas
            ]
            if finish is not None:
                out.append({"index": i, "delta": {}, "logprobs": None, "finish_reason": finish})
            return out

        started: set[int] = set()
        try:
            while True:
                items = [await queue.get()]
                while not queue.empty():
                    items.append(queue.get_nowait())
                batch: list[dict[str, Any]] = []
                for item in items:
                    if item is _END:
                        req, choices = _result(fut)  # raises the worker's error, before any chunk if early
                        for c in choices:
                            if chat and c.index not in started:
                                batch.append(
                                    chunk(
                                        [
                                            {
                                                "index": c.index,
                                                "delta": {"role": "assistant", "content": ""},
                                                "logprobs": None,
                                                "finish_reason": None,
                                            }
                                        ]
                                    )
                                )
                            batch += [chunk([p]) for p in parts(c.index, None, c.finish_reason or "stop")]
                        if usage:
                            batch.append(chunk([], _usage(req, choices)))
                        yield batch
                        return
                    i, text = item
                    if chat and i not in started:
                        started.add(i)
                        batch.append(
                            chunk(
                                [
                                    {
                                        "index": i,
                                        "delta": {"role": "assistant", "content": ""},
                                        "logprobs": None,
                                        "finish_reason": None,
                                    }
                                ]
                            )
                        )
                    started.add(i)
                    batch += [chunk([p]) for p in parts(i, text, None)]
                if batch:
                    yield batch
        finally:
            cancel.set()  # a client that left (or a finished stream): the engine drops it at its next step


def _result(fut: asyncio.Future[Any]) -> tuple[Any, list[Any]]:
    try:
        result: tuple[Any, list[Any]] = fut.result()
        return result
    except UpstreamError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise _error(exc) from None


def _usage(req: Any, choices: list[Any]) -> dict[str, int]:
    made = sum(len(c.token_ids) for c in choices)
    return {"prompt_tokens": len(req.prompt_ids), "completion_tokens": made, "total_tokens": len(req.prompt_ids) + made}


def _id(chat: bool) -> str:
    return ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]

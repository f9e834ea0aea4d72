"""Public model names → upstreams. With `--upstream URL`, every model that server lists is proxied."""

from __future__ import annotations

import dataclasses
import time

from cuirass.config import ModelConfig, Settings, UpstreamConfig
from cuirass.gateway.errors import APIError
from cuirass.upstream import HTTPUpstream, Upstream, UpstreamError
from cuirass.upstream.local import LocalUpstream


@dataclasses.dataclass(frozen=True, slots=True)
class Route:
    name: str  # public name
    principal: Upstream
    principal_model: str
    decoy: Upstream | None = None
    decoy_model: str | None = None


class ModelRegistry:
    DISCOVERY_REFRESH_S = 10.0

    def __init__(self, settings: Settings) -> None:
        self._upstreams: dict[str, Upstream] = {}
        self._routes: dict[str, Route] = {}
        self._discovery: Upstream | None = None
        self._discovered_at = 0.0
        for m in settings.models:
            self._routes[m.name] = self._route(m)
        if settings.upstream:
            self._discovery = self._upstream(UpstreamConfig(base_url=settings.upstream))

    def _upstream(self, cfg: UpstreamConfig) -> Upstream:
        """One pooled client (or one loaded local model) per distinct upstream configuration."""
        key = cfg.model_dump_json(exclude={"model"}) + (cfg.api_key.get_secret_value() if cfg.api_key else "")
        if key not in self._upstreams:
            if cfg.type == "local":
                self._upstreams[key] = LocalUpstream(str(cfg.path), cfg)
            else:
                self._upstreams[key] = HTTPUpstream(str(cfg.base_url), cfg)
        return self._upstreams[key]

    def _route(self, m: ModelConfig) -> Route:
        return Route(
            name=m.name,
            principal=self._upstream(m.upstream),
            principal_model=m.upstream.model or m.name,
            decoy=self._upstream(m.decoy) if m.decoy else None,
            decoy_model=(m.decoy.model or m.name) if m.decoy else None,
        )

    async def start(self) -> None:
        for u in self._upstreams.values():
            await u.start()
        if self._discovery is not None:
            try:
                await self._discover()
            except UpstreamError:
                pass  # the upstream may come up later; requests retry discovery

    async def close(self) -> None:
        for u in self._upstreams.values():
            await u.close()

    async def _discover(self) -> None:
        assert self._discovery is not None
        self._discovered_at = time.monotonic()
        for name in await self._discovery.list_models():
            if name not in self._routes:
                self._routes[name] = Route(name=name, principal=self._discovery, principal_model=name)

    async def resolve(self, name: str) -> Route:
        route = self._routes.get(name)
        if route is None and self._discovery is not None:
            if time.monotonic() - self._discovered_at > self.DISCOVERY_REFRESH_S:
                try:
                    await self._discover()
                except UpstreamError:
                    pass
            route = self._routes.get(name)
        if route is None:
            raise APIError(
                404,
                f"The model '{name}' does not exist or you do not have access to it.",
                param="model",
                code="model_not_found",
            )
        return route

    def public_names(self) -> list[str]:
        return sorted(self._routes)

    def local_models(self) -> dict[str, dict[str, str]]:
        """Load state of each local model (`loading`, `ready` or `failed` with the error), by its path."""
        return {
            u.config.path or u.name: u.load_state() for u in self._upstreams.values() if isinstance(u, LocalUpstream)
        }

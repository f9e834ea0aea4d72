"""Configuration: one YAML file, every value overridable by `CUIRASS_...` environment variables.

Precedence (highest first): command-line flags, environment (`CUIRASS_SERVER__PORT=9090`, nested keys
joined by `__`), the YAML file (`--config` or `CUIRASS_CONFIG`), built-in defaults. Strings in the YAML
may reference secrets as `${ENV_VAR}`; an undefined reference is an error, never an empty secret.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from cuirass.config.policy import PolicyConfig

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
ADMIN_KEY_MIN = 16  # characters: a shorter key is guessable (an empty one matched requests sending none)
RATE_MAX = 2**31 - 1  # the largest per-minute limit a key may have (stored as a 32-bit SQL integer)


class ConfigError(Exception):
    """The configuration cannot be used; the message says why, without revealing secret values."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UpstreamConfig(_Section):
    """Where answers come from: an OpenAI-compatible server (`http`), or a Hugging Face causal LM
    served in-process from a local directory (`local`, needs the `engine` extra)."""

    type: Literal["http", "local"] = "http"
    base_url: str | None = None  # http: the server's /v1 URL
    model: str | None = None  # the upstream's served name; defaults to the public name
    api_key: SecretStr | None = None
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 300.0  # longest silence allowed between bytes of a response
    max_connections: int = 512
    path: str | None = None  # local: model directory (config, weights, tokenizer); "builtin:NAME" = shipped model
    device: str = "auto"  # local: "auto" (CUDA when present, else CPU), "cpu", "cuda", "cuda:1", ...
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"  # local: auto = float32 on CPU
    max_concurrency: int = Field(default=8, ge=1)  # local: choices decoded together as one batch; more wait
    threads: int | None = Field(default=None, ge=1)  # local: torch CPU threads; None = torch's default
    # local: "think" for a model that writes <think> ... </think> before its answer: chat completions return
    # the block as reasoning_content (vLLM's --reasoning-parser); None: the text as generated
    reasoning_parser: Literal["think"] | None = None

    @model_validator(mode="after")
    def _where(self) -> UpstreamConfig:
        if self.type == "http" and not self.base_url:
            raise ValueError("an http upstream needs base_url")
        if self.type == "local" and not self.path:
            raise ValueError("a local upstream needs path (a Hugging Face model directory)")
        return self


class ModelConfig(_Section):
    """A public model name and where its traffic goes."""

    name: str
    upstream: UpstreamConfig
    decoy: UpstreamConfig | None = None


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1)
    body_timeout_s: float = Field(default=10.0, gt=0)  # a request body not all there by then gets a 408
    max_unfinished_bodies_per_client: int = Field(default=32, ge=1)  # per address and worker; more get a 429
    relay_upstream_errors: bool = False  # pass an upstream's own error text to clients (else a generic one)
    header_timeout_s: float = Field(default=10.0, gt=0)  # request headers not all there by then get a 408
    max_header_bytes: int = Field(default=64 * 1024, ge=1024)  # larger request headers get a 431


class StorageConfig(_Section):
    # SQLAlchemy URL of the event log and account store; default: SQLite under the data directory.
    url: str | None = None


class EventsConfig(_Section):
    retention: Literal["full", "hashes"] = "full"  # "hashes": message and response text stored as SHA-256
    batch_size: int = 512
    flush_interval_s: float = 0.25
    queue_max: int = 200_000  # beyond this the writer applies back-pressure rather than dropping
    # Each event is also appended to <data dir>/spool before its response completes, so a killed process
    # loses none (the next start replays what the store lacks). fsync: "none" survives process crashes
    # only; "batch" bounds a machine crash's loss to about one flush interval; "always" loses nothing
    # answered even to a power cut, at one disk flush per request.
    spool: bool = True
    spool_fsync: Literal["none", "batch", "always"] = "batch"
    # The fleet's event bus (docs/fleet.md), e.g. "nats://127.0.0.1:4222": gateways publish each event to a
    # JetStream stream and count it written once the stream acknowledged it; the archive writer and the
    # detector shards consume it. None: events go straight to the SQL store (one machine).
    bus: str | None = None
    bus_stream: str = "CUIRASS_EVENTS"  # the JetStream stream's name
    bus_partitions: int = Field(
        default=16, ge=1, le=1024
    )  # subjects cuirass.events.<p> (cuirass.<stream>.<p> for another stream), p = crc32(account) mod this


class LimitsConfig(_Section):
    """Per-key limits: the defaults for keys created without their own (None means unlimited), and where
    the counters live."""

    requests_per_min: int | None = Field(default=None, ge=1, le=RATE_MAX)
    tokens_per_min: int | None = Field(default=None, ge=1, le=RATE_MAX)
    # Where the counters live: None = this machine (in the process for one worker, a SQLite file under the
    # data directory shared by `--workers N`); "redis://host:port/db" = shared by every gateway of a fleet.
    backend: str | None = None
    on_backend_down: Literal["open", "closed"] = "open"  # admit (open) or refuse with a 503 (closed)
    backend_timeout_s: float = Field(default=0.25, gt=0)  # a backend slower than this counts as down


class AuthConfig(_Section):
    cache_ttl_s: float = 2.0  # how long a verified key is trusted before the store is asked again


class DetectionConfig(_Section):
    """Online detection: a service tails the event log, scores accounts, writes the verdict store."""

    enabled: bool = True  # `serve` starts the detection service beside the gateway
    calibration: Path | None = None  # thresholds from `cuirass detect calibrate`; None: built-in defaults
    campaign_interval_s: float = 300.0  # event time between campaign-detection runs
    poll_interval_s: float = 0.5  # how often the service looks for new events
    warm_start_s: float = 86_400.0  # on start, replay this much recent history to rebuild state
    refresh_s: float = 1.0  # how often gateway workers reload verdicts
    # Verdicts, overrides and key revocations pushed to every gateway as they change ("nats://..." or
    # "redis://..."); None: events.bus when set, else limits.backend when it is Redis, else polling alone.
    push: str | None = None
    # The Redis channel or NATS subject the notices go on: one per fleet (gateways, detection, CLI alike).
    push_channel: str = Field(
        default="cuirass.push", min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"
    )


class TracingConfig(_Section):
    """OpenTelemetry traces of the gateway's requests, with the GenAI semantic conventions (opt-in)."""

    # OTLP/HTTP traces endpoint of a collector, e.g. "http://127.0.0.1:4318/v1/traces"; None: no traces.
    otlp_endpoint: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)  # sent with each export (e.g. a collector's key)
    service_name: str = "cuirass"
    # Also put the prompts and answers on the spans (gen_ai.input.messages / gen_ai.output.messages). Off by
    # default: a tracing backend often keeps data under looser rules than the event log.
    capture_content: bool = False


class Settings(BaseSettings):
    """Everything `cuirass serve` needs. See README "Configuration" for a commented example."""

    model_config = SettingsConfigDict(env_prefix="CUIRASS_", env_nested_delimiter="__", extra="forbid")

    data_dir: Path = Path(".cuirass")
    admin_key: SecretStr | None = None
    upstream: str | None = None  # `--upstream URL`: proxy every model this server lists
    models: list[ModelConfig] = Field(default_factory=list)
    server: ServerConfig = Field(default_factory=ServerConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    events: EventsConfig = Field(default_factory=EventsConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    detection: DetectionConfig = Field(default_factory=DetectionConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    tracing: TracingConfig = Field(default_factory=TracingConfig)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlSource(settings_cls))

    @field_validator("admin_key")
    @classmethod
    def _admin_key_strong(cls, value: SecretStr | None) -> SecretStr | None:
        # An empty or short admin key would open /admin to anyone who guesses it: refuse to run with one.
        if value is not None:
            key = value.get_secret_value()
            if len(key) < ADMIN_KEY_MIN or key != key.strip():
                raise ValueError(
                    f"CUIRASS_ADMIN_KEY must be at least {ADMIN_KEY_MIN} characters, without leading or trailing "
                    "spaces; unset it to have `cuirass serve` generate one"
                )
        return value

    @property
    def database_url(self) -> str:
        return self.storage.url or f"sqlite:///{(self.data_dir / 'cuirass.db').resolve()}"


# The YAML file chosen for the next Settings() construction (set by load_settings).
_yaml_data: dict[str, Any] = {}


class _YamlSource(PydanticBaseSettingsSource):
    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return _yaml_data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_yaml_data)


def expand_env_refs(value: Any, where: str = "config") -> Any:
    """Replace `${VAR}` in every string of a parsed YAML document by the variable's value."""
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in os.environ:
                raise ConfigError(f"{where} references ${{{name}}}, but the environment variable {name} is not set")
            return os.environ[name]

        return _ENV_REF.sub(sub, value)
    if isinstance(value, list):
        return [expand_env_refs(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: expand_env_refs(v, f"{where}.{k}") for k, v in value.items()}
    return value


def load_settings(config_path: str | Path | None = None, **overrides: Any) -> Settings:
    """Read the YAML file (if any), apply environment and explicit overrides, validate."""
    global _yaml_data  # noqa: PLW0603 - the file read last, for the reload check
    path = config_path or os.environ.get("CUIRASS_CONFIG")
    data: dict[str, Any] = {}
    if path:
        try:
            raw = yaml.safe_load(Path(path).read_text()) or {}
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"config file {path} must hold a mapping at the top level")
        data = expand_env_refs(raw, where=str(path))
    _yaml_data = data
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None
    finally:
        _yaml_data = {}

"""Configuration: the settings of a deployment (settings.py) and the policy section (policy.py)."""

from cuirass.config.policy import Band, BandCondition, PolicyConfig, PolicyOverride
from cuirass.config.settings import (
    ADMIN_KEY_MIN,
    RATE_MAX,
    AuthConfig,
    ConfigError,
    DetectionConfig,
    EventsConfig,
    LimitsConfig,
    ModelConfig,
    ServerConfig,
    Settings,
    StorageConfig,
    TracingConfig,
    UpstreamConfig,
    expand_env_refs,
    load_settings,
)

__all__ = [
    "ADMIN_KEY_MIN",
    "RATE_MAX",
    "AuthConfig",
    "Band",
    "BandCondition",
    "ConfigError",
    "DetectionConfig",
    "EventsConfig",
    "LimitsConfig",
    "ModelConfig",
    "PolicyConfig",
    "PolicyOverride",
    "ServerConfig",
    "Settings",
    "StorageConfig",
    "TracingConfig",
    "UpstreamConfig",
    "expand_env_refs",
    "load_settings",
]

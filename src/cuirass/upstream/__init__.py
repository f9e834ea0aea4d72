"""Where answers come from: a principal model server and, optionally, a lower-grade decoy."""

from cuirass.upstream.base import Upstream, UpstreamError
from cuirass.upstream.http import HTTPUpstream

__all__ = ["HTTPUpstream", "Upstream", "UpstreamError"]

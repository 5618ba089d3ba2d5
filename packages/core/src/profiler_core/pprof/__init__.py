"""pprof encoding: turn recorder snapshots into gzip-ready ``profile.proto`` bytes."""

from profiler_core.pprof.encoder import encode_profile

__all__ = ["encode_profile"]

"""pprof encoding: turn recorder snapshots into gzip-ready ``profile.proto`` bytes."""

import zlib

from profiler_core.pprof.encoder import encode_profile

__all__ = ["encode_profile", "gzip_bytes"]


def gzip_bytes(pprof: bytes) -> bytes:
    """``pprof`` as a gzip member (level 6, no name, mtime 0: the bytes depend on the profile
    alone), as ``gzip.compress`` makes it; through zlib, whose import costs nothing at start-up."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)  # 16 + 15: a gzip header and trailer
    return compressor.compress(pprof) + compressor.flush()

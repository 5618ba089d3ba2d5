"""Sampling rates recorded in a profile, so that a reader can turn counts into estimates.

Lock and exception samples count sampled events one each, as ddtrace's do, so that what reaches
Datadog reads the same. The fraction of events each of those sample types saw is written into
the profile as one pprof comment, ``sampling-rate lock-acquire=0.01 lock-acquire-wait=0.01 ...``;
the local viewers divide by it to show estimated totals, and say that they do.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, Iterable, Mapping

COMMENT_PREFIX = "sampling-rate "


def rates_comment(rates: "Mapping[str, float]") -> str:
    """The comment recording ``rates`` (sample type -> fraction of events sampled, in (0, 1])."""
    return COMMENT_PREFIX + " ".join("%s=%r" % (name, float(rate)) for name, rate in sorted(rates.items()))


def rates_from_comments(comments: "Iterable[str]") -> "Dict[str, float]":
    """The rates recorded in a profile's comments; a malformed entry is left out (rate 1)."""
    rates: "Dict[str, float]" = {}
    for comment in comments:
        if not comment.startswith(COMMENT_PREFIX):
            continue
        for item in comment[len(COMMENT_PREFIX):].split():
            name, _, value = item.partition("=")
            try:
                rate = float(value)
            except ValueError:
                continue
            if name and 0.0 < rate <= 1.0:
                rates[name] = rate
    return rates

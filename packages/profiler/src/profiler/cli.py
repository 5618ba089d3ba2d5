"""The ``profiler`` command: look at profiles locally, without an agent.

``profiler top FILE... [--type T] [--by function|line|file|thread|LABEL] [--limit N]``
prints flat and cumulative totals, like ``go tool pprof -top``;
``profiler flamegraph FILE... -o out.html`` writes an interactive flame graph page;
``profiler timeline FILE... -o out.html`` draws when each thread and task ran what;
``profiler diff BASE NEW [--html out.html]`` shows what got slower or faster;
``profiler collapsed`` and ``profiler speedscope`` export for other viewers. Each takes
``--endpoint 'GET /users'``, ``--span ID`` and ``--where LABEL=VALUE`` to look at one endpoint,
one request or one span (trace correlation's labels), or any label value.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from profiler.exports import collapsed, speedscope, write_json
from profiler.pprof_reader import FrameKey, ProfileError, ProfileSample, ProfileSet, load, max_bytes_from
from profiler.terminal import printable
from profiler.versions import version_text

FRAME_GROUPINGS = ("function", "line", "file")
PREFERRED_TYPES = ("cpu-time", "wall-time", "alloc-space", "heap-space", "lock-acquire-wait", "exception-samples")


def format_value(value: float, unit: str) -> str:
    """Human units: 1.25s / 340ms / 12µs for nanoseconds, 3.2MiB for bytes, plain for counts."""
    if unit == "nanoseconds":
        for scale, suffix in ((1e9, "s"), (1e6, "ms"), (1e3, "µs")):
            if abs(value) >= scale:
                return "%.3g%s" % (value / scale, suffix)
        return "%dns" % value
    if unit == "bytes":
        for scale, suffix in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
            if abs(value) >= scale:
                return "%.3g%s" % (value / scale, suffix)
        return "%dB" % value
    return "%d" % value


def short_path(path: str) -> str:
    """The last two components of a path, enough to tell files apart in a table."""
    parts = path.replace("\\", "/").split("/")
    return "/".join(parts[-2:]) if len(parts) > 1 else path


def frame_key(frame: FrameKey, by: str) -> str:
    """How one frame is named in a ``--by function|line|file`` table."""
    name, filename, line = frame
    if by == "function":
        return "%s  %s" % (name, short_path(filename)) if filename else name
    if by == "line":
        return "%s  %s:%d" % (name, short_path(filename), line)
    return filename or name


class _FrameNames(dict):
    """Frame -> its key for a ``--by`` grouping, computed on first use."""

    def __init__(self, by: str) -> None:
        super().__init__()
        self.by = by

    def __missing__(self, frame: FrameKey) -> str:
        key = self[frame] = frame_key(frame, self.by)
        return key


def sample_keys(sample: ProfileSample, by: str, names: "Optional[_FrameNames]" = None) -> Tuple[Optional[str], List[str]]:
    """(flat key, cumulative keys) of a sample for a ``--by`` grouping; ``names`` (``_FrameNames(by)``)
    caches frame keys across samples."""
    if by in FRAME_GROUPINGS:
        keys = list(map((names if names is not None else _FrameNames(by)).__getitem__, sample.frames))
        return (keys[0] if keys else None), keys
    value = sample.labels.get(by)
    key = None if value is None else str(value)
    return key, [key] if key is not None else []


def top(profiles: ProfileSet, sample_type: str, by: str = "function") -> List[Tuple[str, int, int]]:
    """(key, flat, cumulative) for every key, largest flat first; cumulative counts a key once per sample."""
    flat: Dict[str, int] = defaultdict(int)
    cum: Dict[str, int] = defaultdict(int)
    names = _FrameNames(by)
    for sample in profiles.samples:
        value = sample.values.get(sample_type, 0)
        if not value:
            continue
        leaf, keys = sample_keys(sample, by, names)
        if leaf is not None:
            flat[leaf] += value
        for key in set(keys):
            cum[key] += value
    rows = [(key, flat.get(key, 0), total) for key, total in cum.items()]
    rows.sort(key=lambda r: (-r[1], -r[2], r[0]))
    return rows


def choose_type(profiles: ProfileSet, wanted: Optional[str]) -> str:
    """The sample type to show: ``wanted`` if given, else the first preferred type with data."""
    types = profiles.types()
    if wanted:
        if wanted not in types:
            raise SystemExit(printable("profiler: no %r samples in %s (types: %s)" % (
                wanted, describe(profiles), ", ".join(types) or "none")))
        return wanted
    totals = defaultdict(int)
    for sample in profiles.samples:
        for name, value in sample.values.items():
            totals[name] += value
    for name in PREFERRED_TYPES:
        if totals.get(name):
            return name
    for name in types:
        if totals.get(name):
            return name
    raise SystemExit(printable("profiler: %s: no samples" % describe(profiles)))


def describe(profiles: ProfileSet) -> str:
    """The files ``profiles`` came from, for messages: ``a.pprof``, ``a.pprof, b.pprof`` or ``a.pprof and 9 more``."""
    paths = profiles.paths or ["these profiles"]
    if len(paths) <= 3:
        return ", ".join(paths)
    return "%s and %d more" % (paths[0], len(paths) - 1)


def check_grouping(by: str, *sets: ProfileSet) -> str:
    """The label key ``--by by`` means (``thread`` is ``thread name``), or ``SystemExit`` listing the valid ones."""
    if by in FRAME_GROUPINGS:
        return by
    key = "thread name" if by == "thread" else by
    found = set().union(*(p.label_keys for p in sets))
    if key in found:
        return key
    valid = list(FRAME_GROUPINGS) + (["thread"] if "thread name" in found else []) + sorted(found)
    raise SystemExit(printable("profiler: --by %s: no such label in %s (valid: %s)" % (
        by, ", ".join(describe(p) for p in sets), ", ".join(valid))))


def print_top(profiles: ProfileSet, sample_type: str, by: str, limit: int, out=None) -> None:
    """Print the ``top`` table (to ``out``, default standard output)."""
    out = out or sys.stdout
    unit = profiles.units.get(sample_type, "count")
    rows = top(profiles, sample_type, by)
    total = sum(sample.values.get(sample_type, 0) for sample in profiles.samples)
    # distinct stacks with a value of this type (timestamped samples repeat theirs, one per moment)
    stacks = len({sample.frames for sample in profiles.samples if sample.values.get(sample_type)})
    out.write(printable("%s: total %s over %d stacks, by %s" % (sample_type, format_value(total, unit), stacks, by)) + "\n")
    note = estimate_note(profiles, sample_type)
    if note:
        out.write(note + "\n")
    out.write("%10s %6s %10s %6s  %s\n" % ("flat", "flat%", "cum", "cum%", printable(by)))
    for key, flat, cum in rows[:limit]:
        out.write(
            "%10s %5.1f%% %10s %5.1f%%  %s\n"
            % (format_value(flat, unit), 100.0 * flat / total if total else 0, format_value(cum, unit),
               100.0 * cum / total if total else 0, printable(key))
        )
    if len(rows) > limit:
        out.write("(%d more; --limit to see them)\n" % (len(rows) - limit))


def estimate_note(profiles: ProfileSet, sample_type: str) -> str:
    """One line saying that ``sample_type``'s values are estimates scaled up from sampled events
    (the profile stores each sampled event once, as ddtrace does), or "" when they are not."""
    factor = profiles.estimated.get(sample_type)
    if not factor or factor == 1.0:
        return ""
    return "(estimated: each sampled event counted %g times, from the sampling rate of %g%% the profile records)" % (
        factor, 100.0 / factor)


def diff(base: ProfileSet, new: ProfileSet, sample_type: str, by: str = "function") -> "List[Tuple[str, int, int]]":
    """(key, base flat, new flat) for every key of either, largest absolute change first.

    Values are per second of profile duration when both profiles say how long they
    lasted, so a 60 s profile compares fairly with a 10 s one.
    """
    def per_second(profiles: ProfileSet) -> "Dict[str, float]":
        scale = 1e9 / profiles.duration_ns if profiles.duration_ns else 1.0
        return {key: flat * scale for key, flat, _cum in top(profiles, sample_type, by)}

    a, b = per_second(base), per_second(new)
    rows = [(key, int(a.get(key, 0)), int(b.get(key, 0))) for key in set(a) | set(b)]
    rows.sort(key=lambda r: (-abs(r[2] - r[1]), r[0]))
    return rows


def print_diff(base: ProfileSet, new: ProfileSet, sample_type: str, by: str, limit: int, out=None) -> None:
    """Print the ``diff`` table: which keys got slower (+) or faster (-)."""
    out = out or sys.stdout
    unit = new.units.get(sample_type) or base.units.get(sample_type, "count")
    per = "/s" if base.duration_ns and new.duration_ns else ""
    out.write(printable("%s%s, flat, by %s: base -> new (change)" % (sample_type, per, by)) + "\n")
    note = estimate_note(new, sample_type) or estimate_note(base, sample_type)
    if note:
        out.write(note + "\n")
    rows = diff(base, new, sample_type, by)
    for key, before, after in rows[:limit]:
        change = after - before
        sign = "+" if change > 0 else "-" if change < 0 else " "
        pct = ("%+.0f%%" % (100.0 * change / before)) if before else "new"
        out.write("%10s -> %10s  %s%-10s %6s  %s\n" % (
            format_value(before, unit), format_value(after, unit), sign, format_value(abs(change), unit), pct, printable(key)))
    if len(rows) > limit:
        out.write("(%d more; --limit to see them)\n" % (len(rows) - limit))


class VersionAction(argparse.Action):
    """``--version``: print :func:`version_text` as it is (argparse's own action rewraps it) and exit."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, **kwargs)  # type: ignore[arg-type]

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # type: ignore[no-untyped-def]
        sys.stdout.write(version_text("profiler"))
        parser.exit(0)


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive integer: %r" % text)
    return value


def _positive_mib(text: str) -> float:
    value = float(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError("must be a positive number of MiB: %r" % text)
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``profiler`` command line."""
    parser = argparse.ArgumentParser(prog="profiler", description="Look at pprof profiles locally.")
    parser.add_argument("-V", "--version", action=VersionAction,
                        help="show the versions of the profiler's installed distributions and exit")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--max-size", type=_positive_mib, metavar="MIB",
        help="largest profile read per file, in MiB once decompressed (default 256, or PROFILER_MAX_SIZE_MIB)",
    )
    common.add_argument("--endpoint", help="only the samples of requests to this endpoint (label trace endpoint), e.g. 'GET /users'")
    common.add_argument("--span", type=int, metavar="ID",
                        help="only the samples of this span or of the request it is the local root of "
                             "(span id / local root span id, as Datadog shows them)")
    common.add_argument("--where", action="append", metavar="LABEL=VALUE", default=[],
                        help="only the samples with this label value (repeatable; all must match)")
    sub = parser.add_subparsers(dest="command", required=True)
    p_top = sub.add_parser("top", parents=[common], help="table of the heaviest functions (or lines, files, threads, labels)")
    p_top.add_argument("files", nargs="+", help="pprof files (gzip or not); several are merged")
    p_top.add_argument("--type", help="sample type, e.g. cpu-time, wall-time, alloc-space (default: first with data)")
    p_top.add_argument("--by", default="function", help="function (default), line, file, thread, or any label key")
    p_top.add_argument("--limit", type=_positive_int, default=20, help="rows to show (default 20)")
    p_diff = sub.add_parser("diff", parents=[common], help="what got slower or faster between two profiles (or sets of profiles)")
    p_diff.add_argument("base", help="the base pprof file")
    p_diff.add_argument("new", help="the new pprof file")
    p_diff.add_argument("--type", help="sample type (default: first with data in the new profile)")
    p_diff.add_argument("--by", default="function", help="function (default), line, file, thread, or any label key")
    p_diff.add_argument("--limit", type=_positive_int, default=20)
    p_diff.add_argument("--html", help="also write a differential flame graph page (red: grew, blue: shrank)")
    p_fg = sub.add_parser("flamegraph", parents=[common], help="self-contained interactive HTML flame graph (zoom, search, sample types)")
    p_fg.add_argument("files", nargs="+", help="pprof files (gzip or not); several are merged")
    p_fg.add_argument("--type", action="append", help="sample type(s) to include (default: all with data)")
    p_fg.add_argument("-o", "--output", required=True, help="HTML file to write")
    p_tl = sub.add_parser("timeline", parents=[common],
                          help="self-contained HTML timeline: one lane per thread and asyncio task, zoom, pan, "
                               "the flame graph of a selected time range")
    p_tl.add_argument("files", nargs="+", help="pprof files with timestamped samples (DD_PROFILING_TIMELINE_ENABLED)")
    p_tl.add_argument("-o", "--output", required=True, help="HTML file to write")
    p_col = sub.add_parser("collapsed", parents=[common], help="collapsed stacks (root;...;leaf value) for flamegraph.pl, inferno...")
    p_col.add_argument("files", nargs="+")
    p_col.add_argument("--type", help="sample type (default: first with data)")
    p_col.add_argument("-o", "--output", help="file to write (default: standard output)")
    p_ss = sub.add_parser("speedscope", parents=[common], help="speedscope JSON, one profile per sample type")
    p_ss.add_argument("files", nargs="+")
    p_ss.add_argument("--type", action="append", help="sample type(s) to include (default: all with data)")
    p_ss.add_argument("-o", "--output", required=True, help="file to write")
    return parser


class OutputError(Exception):
    """An output file that could not be written; ``str()`` is one line naming it."""


def write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` as UTF-8 (:class:`OutputError` naming it if that fails)."""
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        raise OutputError("cannot write %s: %s" % (path, exc.strerror or exc)) from None


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``profiler`` command: 0 on success; 2 with one line on standard error for a
    missing, unreadable or hostile file (naming it) or an unwritable output; 1 with one line for a
    request the profiles cannot answer (no such sample type or label); 141 when standard output is
    closed early (``profiler top | head``), quietly."""
    args = build_parser().parse_args(argv)
    if hasattr(sys.stdout, "reconfigure"):
        try:
            sys.stdout.reconfigure(errors="backslashreplace")  # any name prints, whatever the locale
        except (ValueError, OSError):
            pass
    try:
        code = run(args)
        sys.stdout.flush()
        return code
    except ProfileError as exc:
        sys.stderr.write(printable("profiler: cannot read profile %s" % exc) + "\n")
        return 2
    except OutputError as exc:
        sys.stderr.write(printable("profiler: %s" % exc) + "\n")
        return 2
    except BrokenPipeError:
        # The reader went away: say nothing, and keep the interpreter's final flush from failing again.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass
        return 141


def sample_filter(args: argparse.Namespace) -> "Optional[Callable[[ProfileSample], bool]]":
    """What ``--endpoint``, ``--span`` and ``--where`` keep, or None when none is given (a
    ``--where`` without ``=`` is a usage error)."""
    wanted: "List[Tuple[str, str]]" = []
    for item in args.where:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(printable("profiler: --where %s: expected LABEL=VALUE" % item))
        wanted.append((key, value))
    if args.endpoint is not None:
        wanted.append(("trace endpoint", args.endpoint))
    span = args.span
    if span is not None and span >= 2**63:
        span -= 2**64  # the profile stores 64-bit ids as signed numbers
    if not wanted and span is None:
        return None

    def keep(sample: ProfileSample) -> bool:
        labels = sample.labels
        if span is not None and labels.get("span id") != span and labels.get("local root span id") != span:
            return False
        return all(str(labels.get(key)) == value for key, value in wanted)

    return keep


def describe_filter(args: argparse.Namespace) -> str:
    """The filter options given, as typed."""
    parts = ["--where %s" % w for w in args.where]
    if args.endpoint is not None:
        parts.append("--endpoint %r" % args.endpoint)
    if args.span is not None:
        parts.append("--span %d" % args.span)
    return " ".join(parts)


def apply_filter(profiles: ProfileSet, keep: "Optional[Callable[[ProfileSample], bool]]") -> ProfileSet:
    """``profiles`` with only the samples ``keep`` keeps (all of them when it is None)."""
    if keep is not None:
        profiles.samples = [sample for sample in profiles.samples if keep(sample)]
    return profiles


def run(args: argparse.Namespace) -> int:
    """Carry out the parsed command (errors as exceptions: see :func:`main`)."""
    files = [args.base, args.new] if args.command == "diff" else args.files
    missing = [f for f in files if not os.path.exists(f)]
    if missing:
        sys.stderr.write(printable("profiler: no such file: %s" % ", ".join(missing)) + "\n")
        return 2
    max_bytes, warning = max_bytes_from(args.max_size, os.environ.get("PROFILER_MAX_SIZE_MIB"))
    if warning:
        sys.stderr.write(printable("profiler: %s" % warning) + "\n")
    keep = sample_filter(args)
    if args.command == "diff":
        base, profiles = apply_filter(load([args.base], max_bytes), keep), apply_filter(load([args.new], max_bytes), keep)
        by = check_grouping(args.by, base, profiles)
    else:
        profiles = apply_filter(load(args.files, max_bytes), keep)
        by = check_grouping(args.by, profiles) if args.command == "top" else "function"
    if keep is not None and not profiles.samples:
        sys.stderr.write(printable("profiler: no samples match %s in %s" % (describe_filter(args), describe(profiles))) + "\n")
        return 1
    if args.command == "top":
        print_top(profiles, choose_type(profiles, args.type), by, args.limit)
    elif args.command == "diff":
        sample_type = choose_type(profiles, args.type)
        print_diff(base, profiles, sample_type, by, args.limit)
        if args.html:
            from profiler.flamegraph import diff_html

            title = "%s -> %s" % (os.path.basename(args.base), os.path.basename(args.new))
            write_text(args.html, diff_html(base, profiles, [sample_type], title))
            sys.stdout.write(printable("differential flame graph: %s" % args.html) + "\n")
    elif args.command == "flamegraph":
        from profiler.flamegraph import flamegraph_html, types_with_data

        types = args.type or types_with_data(profiles)
        if not types:
            choose_type(profiles, None)  # no samples: says so, naming the files
        for t in types:
            choose_type(profiles, t)  # rejects unknown types with a clear message
        title = os.path.basename(args.files[0]) + (" (+%d)" % (len(args.files) - 1) if len(args.files) > 1 else "")
        write_text(args.output, flamegraph_html(profiles, types, title))
        sys.stdout.write(printable("flame graph: %s (open it in a browser)" % args.output) + "\n")
    elif args.command == "timeline":
        from profiler.timeline_page import NoTimeline, timeline_html

        title = os.path.basename(args.files[0]) + (" (+%d)" % (len(args.files) - 1) if len(args.files) > 1 else "")
        try:
            page = timeline_html(profiles, title)
        except NoTimeline as exc:
            sys.stderr.write(printable("profiler: %s in %s" % (exc, describe(profiles))) + "\n")
            return 1
        write_text(args.output, page)
        sys.stdout.write(printable("timeline: %s (open it in a browser)" % args.output) + "\n")
    elif args.command == "collapsed":
        lines = collapsed(profiles, choose_type(profiles, args.type))
        text = "\n".join(lines) + ("\n" if lines else "")
        if args.output:
            write_text(args.output, text)
        else:
            sys.stdout.write(text)
    else:
        types = args.type or [t for t in profiles.types() if any(s.values.get(t) for s in profiles.samples)]
        if not types:
            choose_type(profiles, None)
        for t in types:
            choose_type(profiles, t)  # rejects unknown types with a clear message
        try:
            write_json(speedscope(profiles, types, os.path.basename(args.files[0])), args.output)
        except OSError as exc:
            raise OutputError("cannot write %s: %s" % (args.output, exc.strerror or exc)) from None
    return 0


if __name__ == "__main__":
    sys.exit(main())

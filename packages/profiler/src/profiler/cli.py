"""The ``profiler`` command: look at profiles locally, without an agent.

``profiler top FILE... [--type T] [--by function|line|file|thread|LABEL] [--limit N]``
prints flat and cumulative totals, like ``go tool pprof -top``;
``profiler flamegraph FILE... -o out.html`` writes an interactive flame graph page;
``profiler diff BASE NEW [--html out.html]`` shows what got slower or faster;
``profiler collapsed`` and ``profiler speedscope`` export for other viewers.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

from profiler.exports import collapsed, speedscope, write_json
from profiler.pprof_reader import ProfileSample, ProfileSet, load

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


def sample_keys(sample: ProfileSample, by: str) -> Tuple[Optional[str], List[str]]:
    """(flat key, cumulative keys) of a sample for a ``--by`` grouping."""
    if by in ("function", "line", "file"):
        keys = []
        for name, filename, line in sample.frames:
            if by == "function":
                keys.append("%s  %s" % (name, short_path(filename)) if filename else name)
            elif by == "line":
                keys.append("%s  %s:%d" % (name, short_path(filename), line))
            else:
                keys.append(filename or name)
        return (keys[0] if keys else None), keys
    value = sample.labels.get(by)
    key = None if value is None else str(value)
    return key, [key] if key is not None else []


def top(profiles: ProfileSet, sample_type: str, by: str = "function") -> List[Tuple[str, int, int]]:
    """(key, flat, cumulative) for every key, largest flat first; cumulative counts a key once per sample."""
    flat: Dict[str, int] = defaultdict(int)
    cum: Dict[str, int] = defaultdict(int)
    for sample in profiles.samples:
        value = sample.values.get(sample_type, 0)
        if not value:
            continue
        leaf, keys = sample_keys(sample, by)
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
            raise SystemExit("profiler: no %r samples in these profiles (types: %s)" % (wanted, ", ".join(types)))
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
    raise SystemExit("profiler: these profiles hold no samples")


def print_top(profiles: ProfileSet, sample_type: str, by: str, limit: int, out=None) -> None:
    """Print the ``top`` table (to ``out``, default standard output)."""
    out = out or sys.stdout
    unit = profiles.units.get(sample_type, "count")
    rows = top(profiles, sample_type, by)
    total = sum(sample.values.get(sample_type, 0) for sample in profiles.samples)
    out.write("%s: total %s over %d stacks, by %s\n" % (sample_type, format_value(total, unit), len(profiles.samples), by))
    out.write("%10s %6s %10s %6s  %s\n" % ("flat", "flat%", "cum", "cum%", by))
    for key, flat, cum in rows[:limit]:
        out.write(
            "%10s %5.1f%% %10s %5.1f%%  %s\n"
            % (format_value(flat, unit), 100.0 * flat / total if total else 0, format_value(cum, unit),
               100.0 * cum / total if total else 0, key)
        )
    if len(rows) > limit:
        out.write("(%d more; --limit to see them)\n" % (len(rows) - limit))


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
    out.write("%s%s, flat, by %s: base -> new (change)\n" % (sample_type, per, by))
    rows = diff(base, new, sample_type, by)
    for key, before, after in rows[:limit]:
        change = after - before
        sign = "+" if change > 0 else "-" if change < 0 else " "
        pct = ("%+.0f%%" % (100.0 * change / before)) if before else "new"
        out.write("%10s -> %10s  %s%-10s %6s  %s\n" % (
            format_value(before, unit), format_value(after, unit), sign, format_value(abs(change), unit), pct, key))
    if len(rows) > limit:
        out.write("(%d more; --limit to see them)\n" % (len(rows) - limit))


def build_parser() -> argparse.ArgumentParser:
    """The ``profiler`` command line."""
    parser = argparse.ArgumentParser(prog="profiler", description="Look at pprof profiles locally.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_top = sub.add_parser("top", help="table of the heaviest functions (or lines, files, threads, labels)")
    p_top.add_argument("files", nargs="+", help="pprof files (gzip or not); several are merged")
    p_top.add_argument("--type", help="sample type, e.g. cpu-time, wall-time, alloc-space (default: first with data)")
    p_top.add_argument("--by", default="function", help="function (default), line, file, thread, or any label key")
    p_top.add_argument("--limit", type=int, default=20, help="rows to show (default 20)")
    p_diff = sub.add_parser("diff", help="what got slower or faster between two profiles (or sets of profiles)")
    p_diff.add_argument("base", help="the base pprof file")
    p_diff.add_argument("new", help="the new pprof file")
    p_diff.add_argument("--type", help="sample type (default: first with data in the new profile)")
    p_diff.add_argument("--by", default="function", help="function (default), line, file, thread, or any label key")
    p_diff.add_argument("--limit", type=int, default=20)
    p_diff.add_argument("--html", help="also write a differential flame graph page (red: grew, blue: shrank)")
    p_fg = sub.add_parser("flamegraph", help="self-contained interactive HTML flame graph (zoom, search, sample types)")
    p_fg.add_argument("files", nargs="+", help="pprof files (gzip or not); several are merged")
    p_fg.add_argument("--type", action="append", help="sample type(s) to include (default: all with data)")
    p_fg.add_argument("-o", "--output", required=True, help="HTML file to write")
    p_col = sub.add_parser("collapsed", help="collapsed stacks (root;...;leaf value) for flamegraph.pl, inferno...")
    p_col.add_argument("files", nargs="+")
    p_col.add_argument("--type", help="sample type (default: first with data)")
    p_col.add_argument("-o", "--output", help="file to write (default: standard output)")
    p_ss = sub.add_parser("speedscope", help="speedscope JSON, one profile per sample type")
    p_ss.add_argument("files", nargs="+")
    p_ss.add_argument("--type", action="append", help="sample type(s) to include (default: all with data)")
    p_ss.add_argument("-o", "--output", required=True, help="file to write")
    return parser


def write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` as UTF-8."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``profiler`` command."""
    args = build_parser().parse_args(argv)
    files = [args.base, args.new] if args.command == "diff" else args.files
    missing = [f for f in files if not os.path.exists(f)]
    if missing:
        sys.stderr.write("profiler: no such file: %s\n" % ", ".join(missing))
        return 2
    from google.protobuf.message import DecodeError

    try:
        if args.command == "diff":
            base, profiles = load([args.base]), load([args.new])
        else:
            profiles = load(args.files)
    except (ValueError, OSError, EOFError, DecodeError) as exc:
        sys.stderr.write("profiler: cannot read profile: %s\n" % exc)
        return 2
    by = "thread name" if getattr(args, "by", None) == "thread" else getattr(args, "by", "function")
    if args.command == "top":
        print_top(profiles, choose_type(profiles, args.type), by, args.limit)
    elif args.command == "diff":
        sample_type = choose_type(profiles, args.type)
        print_diff(base, profiles, sample_type, by, args.limit)
        if args.html:
            from profiler.flamegraph import diff_html

            title = "%s -> %s" % (os.path.basename(args.base), os.path.basename(args.new))
            write_text(args.html, diff_html(base, profiles, [sample_type], title))
            sys.stdout.write("differential flame graph: %s\n" % args.html)
    elif args.command == "flamegraph":
        from profiler.flamegraph import flamegraph_html, types_with_data

        types = args.type or types_with_data(profiles)
        for t in types:
            choose_type(profiles, t)  # rejects unknown types with a clear message
        title = os.path.basename(args.files[0]) + (" (+%d)" % (len(args.files) - 1) if len(args.files) > 1 else "")
        write_text(args.output, flamegraph_html(profiles, types, title))
        sys.stdout.write("flame graph: %s (open it in a browser)\n" % args.output)
    elif args.command == "collapsed":
        lines = collapsed(profiles, choose_type(profiles, args.type))
        text = "\n".join(lines) + ("\n" if lines else "")
        if args.output:
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(text)
        else:
            sys.stdout.write(text)
    else:
        types = args.type or [t for t in profiles.types() if any(s.values.get(t) for s in profiles.samples)]
        for t in types:
            choose_type(profiles, t)  # rejects unknown types with a clear message
        write_json(speedscope(profiles, types, os.path.basename(args.files[0])), args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())

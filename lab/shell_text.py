"""Text commands of the node shell: cat, echo, printf, grep, head, tail, wc, awk, sort, uniq,
cut, sed, tee, tr, xargs, test. They stream line by line, so `journalctl -f | grep x` works."""

from __future__ import annotations

import re
from collections import deque

from lab import shell_fs
from lab.shell import Ctx, TextReader, UsageError, command, dispatch


# -- inputs ----------------------------------------------------------------------------------------
async def _lines(ctx: Ctx, files: list[str], prog: str, status: list[int] | None = None,
                 label: bool = False):
    """Lines of the named files (or stdin): yields (name, line)."""
    if not files or files == ["-"]:
        async for line in ctx.stdin.lines():
            yield "(standard input)", line
        return
    for name in files:
        if name == "-":
            async for line in ctx.stdin.lines():
                yield "(standard input)", line
            continue
        path = ctx.abspath(name)
        problem = shell_fs.read_error(ctx.machine, path, ctx.now(), ctx.uid)
        if problem:
            await ctx.error(f"{prog}: {name}: {problem}\n")
            if status is not None:
                status[0] = 2 if prog == "grep" else 1
            continue
        text = shell_fs.read_file(ctx.machine, path, ctx.now()) or ""
        for line in text.splitlines(keepends=True):
            yield name, line


async def _read_text(ctx: Ctx, name: str, prog: str) -> str | None:
    path = ctx.abspath(name)
    problem = shell_fs.read_error(ctx.machine, path, ctx.now(), ctx.uid)
    if problem:
        await ctx.error(f"{prog}: {name}: {problem}\n")
        return None
    return shell_fs.read_file(ctx.machine, path, ctx.now()) or ""


def _nl(line: str) -> str:
    return line if line.endswith("\n") else line + "\n"


# -- cat / echo / printf ---------------------------------------------------------------------------
@command("cat")
async def cat(ctx: Ctx, argv: list[str]) -> int:
    files = [a for a in argv[1:] if not (a.startswith("-") and a != "-")]
    if not files:
        while (chunk := await ctx.stdin.read_chunk()) is not None:
            await ctx.write(chunk)
        return 0
    status = 0
    for name in files:
        if name == "-":
            while (chunk := await ctx.stdin.read_chunk()) is not None:
                await ctx.write(chunk)
            continue
        text = await _read_text(ctx, name, "cat")
        if text is None:
            status = 1
            continue
        await ctx.write(text)
    return status


def _echo_escapes(text: str) -> tuple[str, bool]:
    out = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            n = text[i + 1]
            if n == "c":
                return "".join(out), True
            mapping = {"n": "\n", "t": "\t", "\\": "\\", "a": "\a", "b": "\b", "e": "\x1b",
                       "r": "\r", "f": "\f", "v": "\v"}
            if n in mapping:
                out.append(mapping[n])
                i += 2
                continue
            if n == "0":
                j = i + 2
                while j < len(text) and j < i + 5 and text[j] in "01234567":
                    j += 1
                out.append(chr(int(text[i + 2:j] or "0", 8)))
                i = j
                continue
            if n == "x":
                m = re.match(r"[0-9a-fA-F]{1,2}", text[i + 2:])
                if m:
                    out.append(chr(int(m.group(0), 16)))
                    i += 2 + len(m.group(0))
                    continue
        out.append(c)
        i += 1
    return "".join(out), False


@command("echo")
async def echo(ctx: Ctx, argv: list[str]) -> int:
    args = argv[1:]
    newline, escapes = True, False
    while args and re.fullmatch(r"-[neE]+", args[0]):
        flags = args.pop(0)
        newline = newline and "n" not in flags
        escapes = ("e" in flags) or (escapes and "E" not in flags)
    text = " ".join(args)
    if escapes:
        text, stop = _echo_escapes(text)
        if stop:
            newline = False
    await ctx.write(text + ("\n" if newline else ""))
    return 0


@command("printf")
async def printf(ctx: Ctx, argv: list[str]) -> int:
    if len(argv) < 2:
        raise UsageError("printf: usage: printf [-v var] format [arguments]", 2)
    fmt, args = argv[1], argv[2:]
    out = []
    while True:
        consumed = 0

        def conv(m: re.Match, args: list[str] = args) -> str:
            nonlocal consumed
            spec = m.group(0)
            if spec == "%%":
                return "%"
            value = args[consumed] if consumed < len(args) else ""
            consumed += 1
            kind = spec[-1]
            try:
                if kind in "di":
                    return (spec[:-1] + "d") % int(value or 0)
                if kind in "fgeEx":
                    return spec % (float(value or 0) if kind != "x" else int(value or 0))
            except ValueError:
                return value
            return (spec[:-1] + "s") % value

        text = re.sub(r"%[-+ 0#]*\d*(?:\.\d+)?[sdifgeExb%]", conv, fmt)
        text, _ = _echo_escapes(text)
        out.append(text)
        args = args[consumed:]
        if not args or not consumed:
            break
    await ctx.write("".join(out))
    return 0


# -- grep ------------------------------------------------------------------------------------------
def bre_to_python(pattern: str) -> str:
    """POSIX basic regex to Python: `\\|`, `\\+`, `\\?`, `\\(`, `\\{` are the operators."""
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            n = pattern[i + 1]
            if n in "|+?(){}":
                out.append(n)
            elif n in "<>":
                out.append(r"\b")
            else:
                out.append("\\" + n)
            i += 2
            continue
        if c in "|+?(){}":
            out.append("\\" + c)
        else:
            out.append(c)
        i += 1
    return "".join(out)


def ere_to_python(pattern: str) -> str:
    pattern = pattern.replace(r"\<", r"\b").replace(r"\>", r"\b")
    return re.sub(r"\[\[:(\w+):\]\]", lambda m: "[" + _CLASSES.get(m.group(1), "") + "]",
                  _classes(pattern))


_CLASSES = {"digit": "0-9", "alpha": "A-Za-z", "alnum": "A-Za-z0-9", "space": r"\s",
            "upper": "A-Z", "lower": "a-z", "xdigit": "0-9A-Fa-f", "punct": r"!-/:-@\[-`{-~",
            "blank": r" \t"}


def _classes(pattern: str) -> str:
    return re.sub(r"\[:(\w+):\]", lambda m: _CLASSES.get(m.group(1), m.group(0)), pattern)


def _short_opts(argv: list[str], with_value: str, long_map: dict[str, str] | None = None):
    """getopt-like: returns (opts list of (flag, value)), operands)."""
    opts: list[tuple[str, str]] = []
    operands: list[str] = []
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--":
            operands.extend(args)
            break
        if a.startswith("--") and long_map is not None:
            name, _, value = a[2:].partition("=")
            flag = long_map.get(name)
            if flag is None:
                raise UsageError(f"unrecognized option '{a}'", 2)
            if flag in with_value and not value:
                if not args:
                    raise UsageError(f"option '{a}' requires an argument", 2)
                value = args.pop(0)
            opts.append((flag, value))
            continue
        if a.startswith("-") and len(a) > 1 and not re.fullmatch(r"-\d+", a):
            j = 1
            while j < len(a):
                f = a[j]
                if f in with_value:
                    value = a[j + 1:]
                    if not value:
                        if not args:
                            raise UsageError(f"option requires an argument -- '{f}'", 2)
                        value = args.pop(0)
                    opts.append((f, value))
                    break
                opts.append((f, ""))
                j += 1
            continue
        if re.fullmatch(r"-\d+", a):
            opts.append(("#", a[1:]))
            continue
        operands.append(a)
    return opts, operands


@command("grep", "egrep", "fgrep", "zgrep")
async def grep(ctx: Ctx, argv: list[str]) -> int:
    long_map = {"ignore-case": "i", "invert-match": "v", "extended-regexp": "E", "count": "c",
                "quiet": "q", "silent": "q", "regexp": "e", "word-regexp": "w",
                "line-regexp": "x", "fixed-strings": "F", "line-number": "n",
                "only-matching": "o", "after-context": "A", "before-context": "B",
                "context": "C", "files-with-matches": "l", "no-filename": "h",
                "with-filename": "H", "max-count": "m", "color": "@", "colour": "@",
                "perl-regexp": "P", "text": "a", "no-messages": "s"}
    try:
        opts, operands = _short_opts(argv[1:], "eABCmf", long_map)
    except UsageError as exc:
        raise UsageError(f"grep: {exc.message}\nUsage: grep [OPTION]... PATTERNS [FILE]...\n"
                         "Try 'grep --help' for more information.", 2) from None
    flags = {f for f, _ in opts}
    patterns = [v for f, v in opts if f == "e"]
    after = before = 0
    max_count = None
    for f, v in opts:
        if f in "ABC#":
            if not v.isdigit():
                raise UsageError(f"grep: {v}: invalid context length argument", 2)
            if f in "A":
                after = int(v)
            elif f == "B":
                before = int(v)
            else:
                after = before = int(v)
        if f == "m":
            max_count = int(v)
    if not patterns:
        if not operands:
            raise UsageError("Usage: grep [OPTION]... PATTERNS [FILE]...\n"
                             "Try 'grep --help' for more information.", 2)
        patterns = [operands.pop(0)]
    all_patterns = [p for pat in patterns for p in pat.split("\n")]
    extended = "E" in flags or "P" in flags or argv[0] == "egrep"
    fixed = "F" in flags or argv[0] == "fgrep"
    compiled = []
    for p in all_patterns:
        if fixed:
            src = re.escape(p)
        elif extended:
            src = ere_to_python(p)
        else:
            src = bre_to_python(_classes(p))
        if "w" in flags:
            src = rf"(?<![\w])(?:{src})(?![\w])"
        if "x" in flags:
            src = rf"^(?:{src})$"
        try:
            compiled.append(re.compile(src, re.IGNORECASE if "i" in flags else 0))
        except re.error:
            raise UsageError("grep: Unmatched ( or \\(" if "(" in p else
                             "grep: Invalid regular expression", 2) from None
    invert = "v" in flags
    quiet = "q" in flags
    count_only = "c" in flags
    show_name = ("H" in flags or len(operands) > 1) and "h" not in flags
    status = [1]
    counts: dict[str, int] = {}
    pending_before: deque = deque(maxlen=before or None) if before else deque(maxlen=0)
    after_left = 0
    last_printed = -2
    lineno: dict[str, int] = {}
    any_output = False
    names_listed: set[str] = set()
    for name in operands or ["-"]:
        counts.setdefault(name if operands else "(standard input)", 0)
    async for name, line in _lines(ctx, operands, "grep", status):
        n = lineno[name] = lineno.get(name, 0) + 1
        body = line.rstrip("\n")
        matched = any(c.search(body) for c in compiled)
        if matched != invert:
            if max_count is not None and counts.get(name, 0) >= max_count:
                continue
            counts[name] = counts.get(name, 0) + 1
            if status[0] != 2:
                status[0] = 0
            if quiet:
                return 0
            if "l" in flags:
                if name not in names_listed:
                    names_listed.add(name)
                    await ctx.write(name + "\n")
                continue
            if count_only:
                continue
            if (before or after) and any_output and n - len(pending_before) > last_printed + 1:
                await ctx.write("--\n")
            for pn, pline in pending_before:
                await ctx.write(_prefix(name, pn, "-", show_name, "n" in flags) + _nl(pline))
            pending_before.clear()
            if "o" in flags and not invert:
                for c in compiled:
                    for m in c.finditer(body):
                        if m.group(0):
                            await ctx.write(_prefix(name, n, ":", show_name, "n" in flags) +
                                            m.group(0) + "\n")
            else:
                await ctx.write(_prefix(name, n, ":", show_name, "n" in flags) + _nl(line))
            any_output = True
            last_printed = n
            after_left = after
        elif after_left > 0:
            after_left -= 1
            await ctx.write(_prefix(name, n, "-", show_name, "n" in flags) + _nl(line))
            last_printed = n
        elif before:
            pending_before.append((n, line))
    if count_only:
        for name, c in counts.items():
            await ctx.write((f"{name}:" if show_name else "") + f"{c}\n")
    return status[0]


def _prefix(name: str, n: int, sep: str, show_name: bool, show_num: bool) -> str:
    out = ""
    if show_name:
        out += name + sep
    if show_num:
        out += f"{n}{sep}"
    return out


# -- head / tail / wc ------------------------------------------------------------------------------
def _count_arg(opts: list[tuple[str, str]], default: int = 10) -> tuple[int, bool, bool]:
    """(-n value, from-start '+N', bytes mode)."""
    count, plus, byte_mode = default, False, False
    for f, v in opts:
        if f in ("n", "#", "c"):
            byte_mode = f == "c"
            text = v
            if text.startswith("+"):
                plus, text = True, text[1:]
            neg = text.startswith("-")
            text = text.lstrip("-")
            mult = {"K": 1024, "k": 1024, "M": 1024 ** 2}.get(text[-1:], 1)
            if mult != 1:
                text = text[:-1]
            if not text.isdigit():
                raise UsageError(f"invalid number of lines: '{v}'", 1)
            count = int(text) * mult * (-1 if neg else 1)
    return count, plus, byte_mode


@command("head")
async def head(ctx: Ctx, argv: list[str]) -> int:
    try:
        opts, files = _short_opts(argv[1:], "nc", {"lines": "n", "bytes": "c", "quiet": "q"})
        count, _, byte_mode = _count_arg(opts)
    except UsageError as exc:
        raise UsageError(f"head: {exc.message}", 1) from None
    status = [0]
    if byte_mode:
        data = "".join([line async for _, line in _lines(ctx, files, "head", status)])
        await ctx.write(data[:count] if count >= 0 else data[:count])
        return status[0]
    if count < 0:
        lines = [line async for _, line in _lines(ctx, files, "head", status)]
        await ctx.write("".join(lines[:count]))
        return status[0]
    if count == 0:
        return 0
    seen: dict[str, int] = {}
    current = None
    multiple = len(files) > 1
    async for name, line in _lines(ctx, files, "head", status):
        if multiple and name != current:
            await ctx.write(("\n" if current else "") + f"==> {name} <==\n")
            current = name
        seen[name] = seen.get(name, 0) + 1
        if seen[name] <= count:
            await ctx.write(line)
        elif not multiple:
            break
    ctx.stdin.close()
    return status[0]


@command("tail")
async def tail(ctx: Ctx, argv: list[str]) -> int:
    try:
        opts, files = _short_opts(argv[1:], "ncs", {"lines": "n", "bytes": "c", "follow": "f",
                                                   "quiet": "q"})
        count, plus, byte_mode = _count_arg(opts)
    except UsageError as exc:
        raise UsageError(f"tail: {exc.message}", 1) from None
    count = abs(count)
    status = [0]
    if byte_mode:
        data = "".join([line async for _, line in _lines(ctx, files, "tail", status)])
        await ctx.write(data[-count:] if count else "")
        return status[0]
    if plus:
        n = 0
        async for _, line in _lines(ctx, files, "tail", status):
            n += 1
            if n >= count:
                await ctx.write(line)
        return status[0]
    buf: deque = deque(maxlen=count)
    if count:
        async for _, line in _lines(ctx, files, "tail", status):
            buf.append(line)
    else:
        async for _ in _lines(ctx, files, "tail", status):
            pass
    await ctx.write("".join(buf))
    return status[0]


@command("wc")
async def wc(ctx: Ctx, argv: list[str]) -> int:
    opts, files = _short_opts(argv[1:], "", {"lines": "l", "words": "w", "bytes": "c",
                                            "chars": "m"})
    flags = {f for f, _ in opts} or {"l", "w", "c"}
    status = [0]
    totals: dict[str, list[int]] = {}
    order = []
    async for name, line in _lines(ctx, files, "wc", status):
        if name not in totals:
            totals[name] = [0, 0, 0]
            order.append(name)
        t = totals[name]
        t[0] += line.endswith("\n")
        t[1] += len(line.split())
        t[2] += len(line.encode("utf-8", "surrogateescape"))
    if not files:
        order = order or ["(standard input)"]
        totals.setdefault("(standard input)", [0, 0, 0])
    else:
        for name in files:
            if name not in totals and status[0] == 0:
                totals[name] = [0, 0, 0]
                order.append(name)
    rows = [(totals[n], n) for n in order]
    if len(rows) > 1:
        rows.append(([sum(r[0][i] for r in rows) for i in range(3)], "total"))
    single = len(flags) == 1 and not files
    width = 1 if single else max(len(str(max(max(r[0]) for r in rows))) if rows else 1, 1)
    if not single and files:
        width = max(width, 1)
    for values, name in rows:
        cols = [v for f, v in zip("lwc", values, strict=False)
                if f in flags or (f == "c" and "m" in flags)]
        text = " ".join(f"{v:>{width}}" for v in cols)
        await ctx.write(text + ("" if not files else f" {name}") + "\n")
    return status[0]


# -- sort / uniq / cut / tr ------------------------------------------------------------------------
def _human_key(text: str) -> float:
    m = re.match(r"\s*([-\d.]+)\s*([KMGTP]?)", text, re.I)
    if not m:
        return 0.0
    try:
        value = float(m.group(1))
    except ValueError:
        return 0.0
    return value * 1024 ** ("KMGTP".find(m.group(2).upper()) + 1 if m.group(2) else 0)


def _num_key(text: str) -> float:
    m = re.match(r"\s*(-?\d+(?:\.\d+)?)", text)
    return float(m.group(1)) if m else 0.0


@command("sort")
async def sort(ctx: Ctx, argv: list[str]) -> int:
    opts, files = _short_opts(argv[1:], "ktoS", {"reverse": "r", "numeric-sort": "n",
                                                 "unique": "u", "key": "k",
                                                 "human-numeric-sort": "h",
                                                 "field-separator": "t"})
    flags = {f for f, _ in opts}
    key = next((v for f, v in opts if f == "k"), None)
    sep = next((v for f, v in opts if f == "t"), None)
    status = [0]
    lines = [_nl(line) async for _, line in _lines(ctx, files, "sort", status)]
    kflags = set()
    if key:
        m = re.match(r"(\d+)(?:\.\d+)?([a-z]*)(?:,(\d+)(?:\.\d+)?[a-z]*)?", key)
        if m:
            kflags = set(m.group(2))

    def field(line: str) -> str:
        text = line.rstrip("\n")
        if not key:
            return text
        m = re.match(r"(\d+)(?:\.\d+)?[a-z]*(?:,(\d+))?", key)
        start = int(m.group(1)) if m else 1
        end = int(m.group(2)) if m and m.group(2) else None
        parts = text.split(sep) if sep else text.split()
        chosen = parts[start - 1:end] if end else parts[start - 1:]
        return (sep or " ").join(chosen)

    allf = flags | kflags
    if "n" in allf:
        keyfn = lambda ln: (_num_key(field(ln)), field(ln))  # noqa: E731
    elif "h" in allf:
        keyfn = lambda ln: (_human_key(field(ln)), field(ln))  # noqa: E731
    else:
        keyfn = lambda ln: field(ln).lower() if "f" in allf else field(ln)  # noqa: E731
    lines.sort(key=keyfn, reverse="r" in allf)
    if "u" in flags:
        seen = set()
        out = []
        for ln in lines:
            k = field(ln)
            if k not in seen:
                seen.add(k)
                out.append(ln)
        lines = out
    await ctx.write("".join(lines))
    return status[0]


@command("uniq")
async def uniq(ctx: Ctx, argv: list[str]) -> int:
    opts, files = _short_opts(argv[1:], "", {"count": "c", "repeated": "d", "unique": "u"})
    flags = {f for f, _ in opts}
    prev, n = None, 0

    async def flush() -> None:
        if prev is None:
            return
        if "d" in flags and n < 2:
            return
        if "u" in flags and n > 1:
            return
        await ctx.write(f"{n:>7} {prev}" if "c" in flags else prev)

    async for _, line in _lines(ctx, files[:1], "uniq"):
        line = _nl(line)
        if line == prev:
            n += 1
            continue
        await flush()
        prev, n = line, 1
    await flush()
    return 0


def _ranges(spec: str) -> list[tuple[int, int | None]]:
    out = []
    for piece in spec.split(","):
        if "-" in piece:
            a, b = piece.split("-", 1)
            out.append((int(a) if a else 1, int(b) if b else None))
        elif piece.isdigit():
            out.append((int(piece), int(piece)))
        else:
            raise UsageError(f"cut: invalid field value '{piece}'\n"
                             "Try 'cut --help' for more information.", 1)
    return out


@command("cut")
async def cut(ctx: Ctx, argv: list[str]) -> int:
    opts, files = _short_opts(argv[1:], "dfcb", {"delimiter": "d", "fields": "f",
                                                 "characters": "c", "bytes": "b"})
    delim = next((v for f, v in opts if f == "d"), "\t")
    fields = next((v for f, v in opts if f == "f"), None)
    chars = next((v for f, v in opts if f in "cb"), None)
    if fields is None and chars is None:
        raise UsageError("cut: you must specify a list of bytes, characters, or fields\n"
                         "Try 'cut --help' for more information.", 1)
    if len(delim) != 1:
        raise UsageError("cut: the delimiter must be a single character\n"
                         "Try 'cut --help' for more information.", 1)
    ranges = _ranges(fields or chars)
    status = [0]
    async for _, line in _lines(ctx, files, "cut", status):
        text = line.rstrip("\n")
        if fields is not None:
            if delim not in text:
                await ctx.write(text + "\n")
                continue
            parts = text.split(delim)
            picked = [p for i, p in enumerate(parts, 1)
                      if any(a <= i and (b is None or i <= b) for a, b in ranges)]
            await ctx.write(delim.join(picked) + "\n")
        else:
            picked = [ch for i, ch in enumerate(text, 1)
                      if any(a <= i and (b is None or i <= b) for a, b in ranges)]
            await ctx.write("".join(picked) + "\n")
    return status[0]


def _tr_set(spec: str) -> str:
    spec = spec.replace("[:upper:]", "A-Z").replace("[:lower:]", "a-z").replace(
        "[:digit:]", "0-9").replace("[:space:]", " \t\n\r\f\v").replace("[:alpha:]", "A-Za-z")
    spec, _ = _echo_escapes(spec)
    out = []
    i = 0
    while i < len(spec):
        if i + 2 < len(spec) and spec[i + 1] == "-":
            out.extend(chr(c) for c in range(ord(spec[i]), ord(spec[i + 2]) + 1))
            i += 3
        else:
            out.append(spec[i])
            i += 1
    return "".join(out)


@command("tr")
async def tr(ctx: Ctx, argv: list[str]) -> int:
    opts, sets = _short_opts(argv[1:], "", {"delete": "d", "squeeze-repeats": "s"})
    flags = {f for f, _ in opts}
    if not sets:
        raise UsageError("tr: missing operand\nTry 'tr --help' for more information.", 1)
    a = _tr_set(sets[0])
    b = _tr_set(sets[1]) if len(sets) > 1 else ""
    while (chunk := await ctx.stdin.read_chunk()) is not None:
        if "d" in flags:
            chunk = "".join(ch for ch in chunk if ch not in a)
        elif b:
            table = {ord(x): b[min(i, len(b) - 1)] for i, x in enumerate(a)}
            chunk = chunk.translate(table)
        if "s" in flags:
            squeeze = b or a
            chunk = re.sub("([" + re.escape(squeeze) + "])\\1+", r"\1", chunk)
        await ctx.write(chunk)
    return 0


# -- tee / xargs ----------------------------------------------------------------------------------
@command("tee")
async def tee(ctx: Ctx, argv: list[str]) -> int:
    opts, files = _short_opts(argv[1:], "", {"append": "a"})
    append = any(f == "a" for f, _ in opts)
    status = 0
    targets = []
    for name in files:
        path = ctx.abspath(name)
        if path == "/dev/null":
            continue
        problem = shell_fs.write_problem(ctx.machine, path, ctx.uid, ctx.now())
        if problem:
            await ctx.error(f"tee: {name}: {problem}\n")
            status = 1
            continue
        targets.append(path)
        if not append:
            shell_fs.write(ctx.machine, path, "", ctx.now())
    buf: list[str] = []
    try:
        while (chunk := await ctx.stdin.read_chunk()) is not None:
            buf.append(chunk)
            await ctx.write(chunk)
    finally:
        data = "".join(buf)
        for path in targets:
            shell_fs.write(ctx.machine, path, data, ctx.now(), append=True)
    return status


@command("xargs")
async def xargs(ctx: Ctx, argv: list[str]) -> int:
    args = argv[1:]
    replace = None
    per = None
    no_run_empty = False
    while args and args[0].startswith("-"):
        a = args.pop(0)
        if a == "-I" and args:
            replace = args.pop(0)
        elif a.startswith("-I"):
            replace = a[2:]
        elif a == "-n" and args:
            per = int(args.pop(0))
        elif a.startswith("-n"):
            per = int(a[2:])
        elif a in ("-r", "--no-run-if-empty"):
            no_run_empty = True
        elif a == "-0":
            continue
    cmd = args or ["echo"]
    data = await ctx.stdin.read_all()
    status = 0
    sub = ctx.with_(stdin=TextReader(""))
    if replace is not None:
        for line in data.splitlines():
            if line.strip():
                rc = await dispatch(sub, [a.replace(replace, line) for a in cmd])
                status = status or (123 if rc else 0)
        return status
    items = data.split()
    if not items and no_run_empty:
        return 0
    groups = [items[i:i + per] for i in range(0, len(items), per)] if per else [items]
    for group in groups:
        rc = await dispatch(sub, cmd + group)
        if rc == 127:
            return 127
        if rc:
            status = 123
    return status


# -- test / [ -------------------------------------------------------------------------------------
@command("test", "[")
async def test(ctx: Ctx, argv: list[str]) -> int:
    args = argv[1:]
    if argv[0] == "[":
        if not args or args[-1] != "]":
            raise UsageError("bash: [: missing `]'", 2)
        args = args[:-1]

    def unary(op: str, val: str) -> bool:
        if op in ("-z", "-n"):
            return (len(val) == 0) == (op == "-z")
        entry = shell_fs.stat(ctx.machine, ctx.abspath(val), ctx.now())
        if op == "-e":
            return entry is not None
        if op == "-f":
            return entry is not None and entry.kind in ("file", "link")
        if op == "-d":
            return entry is not None and entry.kind == "dir"
        if op == "-S":
            return entry is not None and entry.kind == "socket"
        if op == "-s":
            return entry is not None and (entry.size > 0 or bool(entry.content and entry.content()))
        if op in ("-r", "-w", "-x", "-L", "-h"):
            return entry is not None
        raise UsageError(f"bash: test: {op}: unary operator expected", 2)

    def evaluate(a: list[str]) -> bool:
        if not a:
            return False
        if a[0] == "!":
            return not evaluate(a[1:])
        if "-a" in a:
            i = a.index("-a")
            return evaluate(a[:i]) and evaluate(a[i + 1:])
        if "-o" in a:
            i = a.index("-o")
            return evaluate(a[:i]) or evaluate(a[i + 1:])
        if len(a) == 1:
            return a[0] != ""
        if len(a) == 2:
            return unary(a[0], a[1])
        if len(a) == 3:
            x, op, y = a
            if op in ("=", "=="):
                return x == y
            if op == "!=":
                return x != y
            ints = {"-eq": int.__eq__, "-ne": int.__ne__, "-gt": int.__gt__,
                    "-lt": int.__lt__, "-ge": int.__ge__, "-le": int.__le__}
            if op in ints:
                try:
                    return ints[op](int(x), int(y))
                except ValueError:
                    raise UsageError(f"bash: test: {x}: integer expression expected", 2) from None
        raise UsageError("bash: test: too many arguments", 2)

    return 0 if evaluate(args) else 1


# -- sed -------------------------------------------------------------------------------------------
def _sed_commands(script: str, extended: bool) -> list[dict]:
    cmds = []
    i = 0
    s = script
    n = len(s)

    def regex(delim: str) -> str:
        nonlocal i
        out = []
        while i < n and s[i] != delim:
            if s[i] == "\\" and i + 1 < n:
                out.append(s[i:i + 2] if s[i + 1] != delim else delim)
                i += 2
                continue
            out.append(s[i])
            i += 1
        if i >= n:
            raise UsageError(f"sed: -e expression #1, char {n}: unterminated `s' command", 1)
        i += 1
        return "".join(out)

    def addr():
        nonlocal i
        if i < n and s[i].isdigit():
            j = i
            while j < n and s[j].isdigit():
                j += 1
            value = int(s[i:j])
            i = j
            return ("line", value)
        if i < n and s[i] == "$":
            i += 1
            return ("last", None)
        if i < n and s[i] == "/":
            i += 1
            pat = regex("/")
            return ("re", re.compile(ere_to_python(pat) if extended else bre_to_python(pat)))
        return None

    while i < n:
        while i < n and s[i] in " \t\n;":
            i += 1
        if i >= n:
            break
        a1 = addr()
        a2 = None
        if a1 and i < n and s[i] == ",":
            i += 1
            a2 = addr()
        while i < n and s[i] == " ":
            i += 1
        negate = False
        if i < n and s[i] == "!":
            negate = True
            i += 1
        if i >= n:
            raise UsageError(f"sed: -e expression #1, char {n}: missing command", 1)
        c = s[i]
        i += 1
        cmd = {"a1": a1, "a2": a2, "neg": negate, "cmd": c, "active": False}
        if c == "s":
            delim = s[i]
            i += 1
            pat = regex(delim)
            rep = regex(delim)
            flags = ""
            while i < n and s[i] not in ";\n}":
                flags += s[i]
                i += 1
            src = ere_to_python(pat) if extended else bre_to_python(_classes(pat))
            cmd["re"] = re.compile(src, re.IGNORECASE if ("I" in flags or "i" in flags) else 0)
            cmd["rep"] = _sed_repl(rep)
            cmd["g"] = "g" in flags
            cmd["p"] = "p" in flags
        elif c in "dpqP=":
            pass
        elif c in "aic":
            text = s[i:].lstrip(" \\\n")
            i = n
            cmd["text"] = text
        else:
            raise UsageError(f"sed: -e expression #1, char {i}: unknown command: `{c}'", 1)
        cmds.append(cmd)
    return cmds


def _sed_repl(rep: str):
    def fn(m: re.Match) -> str:
        out = []
        i = 0
        while i < len(rep):
            c = rep[i]
            if c == "\\" and i + 1 < len(rep):
                d = rep[i + 1]
                if d.isdigit():
                    out.append(m.group(int(d)) or "")
                elif d == "n":
                    out.append("\n")
                elif d == "t":
                    out.append("\t")
                else:
                    out.append(d)
                i += 2
                continue
            if c == "&":
                out.append(m.group(0))
            else:
                out.append(c)
            i += 1
        return "".join(out)
    return fn


def _sed_match(addr, lineno: int, line: str, last: bool) -> bool:
    kind, value = addr
    if kind == "line":
        return lineno == value
    if kind == "last":
        return last
    return bool(value.search(line))


def _sed_applies(cmd: dict, lineno: int, line: str, last: bool) -> bool:
    a1, a2 = cmd["a1"], cmd["a2"]
    if a1 is None:
        hit = True
    elif a2 is None:
        hit = _sed_match(a1, lineno, line, last)
    elif cmd["active"]:
        if a2[0] == "line" and lineno >= a2[1] or a2[0] != "line" and _sed_match(a2, lineno,
                                                                                 line, last):
            cmd["active"] = False
        hit = True
    elif _sed_match(a1, lineno, line, last):
        cmd["active"] = not (a2[0] == "line" and a2[1] <= lineno)
        hit = True
    else:
        hit = False
    return hit != cmd["neg"]


def _sed_line(cmds: list[dict], idx: int, raw: str, last: bool,
              quiet: bool) -> tuple[list[str], bool]:
    """One input line through the script: (what it prints, whether `q` ended the input)."""
    nl = raw.endswith("\n")
    line = raw[:-1] if nl else raw
    out: list[str] = []
    appended: list[str] = []
    deleted = quit_after = False
    for cmd in cmds:
        if not _sed_applies(cmd, idx, line, last):
            continue
        c = cmd["cmd"]
        if c == "s":
            new, count = cmd["re"].subn(cmd["rep"], line, count=0 if cmd["g"] else 1)
            if count:
                line = new
                if cmd["p"]:
                    out.append(line + "\n")
        elif c == "d":
            deleted = True
            break
        elif c == "p":
            out.append(line + "\n")
        elif c == "=":
            out.append(f"{idx}\n")
        elif c == "q":
            quit_after = True
            break
        elif c == "a":
            appended.append(cmd["text"] + "\n")
        elif c == "i":
            out.append(cmd["text"] + "\n")
        elif c == "c":
            line = cmd["text"]
    if not deleted and not quiet:
        out.append(line + ("\n" if nl or appended else ""))
    out.extend(appended)
    return out, quit_after


def _sed_run(cmds: list[dict], lines: list[str], quiet: bool) -> list[str]:
    out: list[str] = []
    total = len(lines)
    for idx, raw in enumerate(lines, 1):
        printed, quit_after = _sed_line(cmds, idx, raw, idx == total, quiet)
        out.extend(printed)
        if quit_after:
            break
    return out


@command("sed")
async def sed(ctx: Ctx, argv: list[str]) -> int:
    args = argv[1:]
    scripts: list[str] = []
    quiet = in_place = extended = False
    files: list[str] = []
    while args:
        a = args.pop(0)
        if a in ("-n", "--quiet", "--silent"):
            quiet = True
        elif a == "-i" or a.startswith("-i") and not a.startswith("-i-") or \
                a.startswith("--in-place"):
            in_place = True
        elif a in ("-E", "-r", "--regexp-extended"):
            extended = True
        elif a == "-e" and args:
            scripts.append(args.pop(0))
        elif a.startswith("-") and len(a) > 1 and all(ch in "nEri" for ch in a[1:]):
            quiet = quiet or "n" in a
            extended = extended or "E" in a or "r" in a
            in_place = in_place or "i" in a
        elif not scripts and not files:
            scripts.append(a)
        else:
            files.append(a)
    if not scripts:
        raise UsageError("Usage: sed [OPTION]... {script-only-if-no-other-script} [input-file]...",
                         1)
    cmds = _sed_commands("\n".join(scripts), extended)
    if in_place:
        if not files:
            raise UsageError("sed: no input files", 1)
        for name in files:
            path = ctx.abspath(name)
            text = await _read_text(ctx, name, "sed")
            if text is None:
                return 2
            problem = shell_fs.write_problem(ctx.machine, path, ctx.uid, ctx.now())
            if problem:
                await ctx.error(f"sed: couldn't open temporary file "
                                f"{path.rsplit('/', 1)[0]}/sedAbC123: {problem}\n")
                return 4
            for c in cmds:
                c["active"] = False
            new = "".join(_sed_run(cmds, text.splitlines(keepends=True), quiet))
            if new != text:
                shell_fs.write(ctx.machine, path, new, ctx.now())
        return 0
    if not files:
        # stream stdin line by line (no `$` lookahead needed for the common commands)
        needs_last = any(c["a1"] and c["a1"][0] == "last" or c["a2"] and c["a2"][0] == "last"
                         for c in cmds)
        if needs_last:
            data = await ctx.stdin.read_all()
            await ctx.write("".join(_sed_run(cmds, data.splitlines(keepends=True), quiet)))
            return 0
        idx = 0
        async for line in ctx.stdin.lines():
            idx += 1
            out, quit_after = _sed_line(cmds, idx, line, False, quiet)
            await ctx.write("".join(out))
            if quit_after:
                ctx.stdin.close()
                return 0
        return 0
    status = [0]
    lines = [line async for _, line in _lines(ctx, files, "sed", status)]
    await ctx.write("".join(_sed_run(cmds, lines, quiet)))
    return 2 if status[0] else 0


# -- awk -------------------------------------------------------------------------------------------
class _Awk:
    """A small awk: `pattern { action }` rules, BEGIN/END, print/printf, $N, NR, NF, += and
    string/number comparisons. Enough for the one-liners operators type."""

    def __init__(self, program: str, fs: str | None, assigns: dict[str, str]) -> None:
        self.fs = fs
        self.vars: dict[str, object] = {"NR": 0, "NF": 0, "FS": fs or " ", "OFS": " "}
        self.vars.update(assigns)
        self.rules = self._parse(program)
        self.fields: list[str] = []
        self.output: list[str] = []

    # parsing
    def _parse(self, prog: str) -> list[tuple[str | None, str | None]]:
        rules = []
        i = 0
        n = len(prog)
        while i < n:
            while i < n and prog[i] in " \t\n;":
                i += 1
            if i >= n:
                break
            pattern_start = i
            depth = 0
            in_re = False
            in_str = False
            while i < n and (prog[i] != "{" or in_re or in_str):
                c = prog[i]
                if c == '"' and not in_re:
                    in_str = not in_str
                elif c == "/" and not in_str and (in_re or i == pattern_start or
                                                  prog[i - 1] in " (!~&|"):
                    in_re = not in_re
                i += 1
            pattern = prog[pattern_start:i].strip() or None
            action = None
            if i < n and prog[i] == "{":
                depth = 1
                j = i + 1
                in_str = False
                while j < n and depth:
                    if prog[j] == '"' and prog[j - 1] != "\\":
                        in_str = not in_str
                    elif not in_str and prog[j] == "{":
                        depth += 1
                    elif not in_str and prog[j] == "}":
                        depth -= 1
                    j += 1
                action = prog[i + 1:j - 1]
                i = j
            rules.append((pattern, action))
        return rules

    # evaluation
    def split(self, line: str) -> None:
        fs = self.vars.get("FS", " ")
        if fs == " ":
            self.fields = line.split()
        elif len(str(fs)) == 1:
            self.fields = line.split(str(fs))
        else:
            self.fields = re.split(str(fs), line)
        self.line = line
        self.vars["NF"] = len(self.fields)

    def field(self, idx: int) -> str:
        if idx == 0:
            return self.line
        return self.fields[idx - 1] if 0 < idx <= len(self.fields) else ""

    def expr(self, text: str) -> object:
        text = text.strip()
        if not text:
            return ""
        for op in ("||", "&&"):
            parts = _split_top(text, op)
            if len(parts) > 1:
                vals = [self.truth(self.expr(p)) for p in parts]
                return int(any(vals) if op == "||" else all(vals))
        if text.startswith("!") and not text.startswith("!="):
            return int(not self.truth(self.expr(text[1:])))
        if re.fullmatch(r"/(?:[^/\\]|\\.)*/", text):
            return int(re.search(ere_to_python(text[1:-1]), self.line) is not None)
        for op in ("!~", "~"):
            parts = _split_top(text, op)
            if len(parts) == 2:
                left = str(self.expr(parts[0]))
                pat = parts[1].strip()
                rx = pat[1:-1] if pat.startswith("/") else str(self.expr(pat))
                hit = re.search(ere_to_python(rx), left) is not None
                return int(hit if op == "~" else not hit)
        for op in ("==", "!=", ">=", "<=", ">", "<"):
            parts = _split_top(text, op)
            if len(parts) == 2:
                a, b = self.expr(parts[0]), self.expr(parts[1])
                na, nb = _awk_num(a), _awk_num(b)
                if na is not None and nb is not None:
                    a, b = na, nb
                else:
                    a, b = str(a), str(b)
                return int({"==": a == b, "!=": a != b, ">=": a >= b, "<=": a <= b,
                            ">": a > b, "<": a < b}[op])
        for op in ("+", "-"):
            parts = _split_top(text, op, binary=True)
            if len(parts) > 1:
                return self._arith(text)
        for op in ("*", "/", "%"):
            parts = _split_top(text, op, binary=True)
            if len(parts) > 1:
                return self._arith(text)
        if text.startswith("(") and text.endswith(")"):
            return self.expr(text[1:-1])
        # concatenation of terms
        terms = _terms(text)
        if len(terms) > 1:
            return "".join(_awk_str(self.term(t)) for t in terms)
        return self.term(text)

    def _arith(self, text: str) -> float:
        tokens = re.findall(r'"[^"]*"|\$\w+|\$\([^)]*\)|[\w.]+|\S', text)
        values: list = []
        ops: list[str] = []
        for tok in tokens:
            if tok in "+-*/%" and values and len(values) > len(ops):
                ops.append(tok)
            else:
                values.append(_awk_num(self.term(tok)) or 0)
        # precedence: * / % first
        i = 0
        while i < len(ops):
            if ops[i] in "*/%":
                a, b = values[i], values[i + 1]
                r = a * b if ops[i] == "*" else (a / b if b else 0) if ops[i] == "/" else \
                    (a % b if b else 0)
                values[i:i + 2] = [r]
                ops.pop(i)
            else:
                i += 1
        result = values[0] if values else 0
        for op, v in zip(ops, values[1:], strict=False):
            result = result + v if op == "+" else result - v
        return result

    def term(self, t: str) -> object:
        t = t.strip()
        if t.startswith('"') and t.endswith('"') and len(t) >= 2:
            return _echo_escapes(t[1:-1])[0]
        if t.startswith("$"):
            inner = t[1:]
            if inner.startswith("(") and inner.endswith(")"):
                inner = inner[1:-1]
            idx = _awk_num(self.expr(inner)) if not inner.isdigit() else int(inner)
            return self.field(int(idx or 0))
        if re.fullmatch(r"-?\d+(\.\d+)?", t):
            return float(t) if "." in t else int(t)
        m = re.fullmatch(r"(length|toupper|tolower|int)\((.*)\)", t)
        if m:
            arg = self.expr(m.group(2)) if m.group(2) else self.line
            if m.group(1) == "length":
                return len(str(arg))
            if m.group(1) == "int":
                return int(_awk_num(arg) or 0)
            return str(arg).upper() if m.group(1) == "toupper" else str(arg).lower()
        if t == "length":
            return len(self.line)
        if t.startswith("(") and t.endswith(")"):
            return self.expr(t[1:-1])
        if re.fullmatch(r"[A-Za-z_]\w*", t):
            return self.vars.get(t, "")
        return t

    def truth(self, v: object) -> bool:
        if isinstance(v, (int, float)):
            return v != 0
        return v != ""

    def run_action(self, action: str | None) -> bool:
        """Runs the statements; returns False on `next`."""
        if action is None:
            self.output.append(self.line + "\n")
            return True
        for stmt in _split_statements(action):
            stmt = stmt.strip()
            if not stmt:
                continue
            if stmt == "next":
                return False
            if stmt.startswith("printf"):
                args = _split_top(stmt[6:].strip().strip("()"), ",")
                fmt = str(self.expr(args[0])) if args else ""
                vals = [self.expr(a) for a in args[1:]]
                self.output.append(_awk_printf(fmt, vals))
                continue
            if stmt == "print" or stmt.startswith("print ") or stmt.startswith("print("):
                body = stmt[5:].strip()
                if body.startswith("(") and body.endswith(")"):
                    body = body[1:-1]
                if not body:
                    self.output.append(self.line + "\n")
                    continue
                parts = _split_top(body, ",")
                ofs = str(self.vars.get("OFS", " "))
                self.output.append(ofs.join(_awk_str(self.expr(p)) for p in parts) + "\n")
                continue
            m = re.fullmatch(r"([A-Za-z_]\w*)\s*(\+\+|--)", stmt)
            if m:
                cur = _awk_num(self.vars.get(m.group(1), 0)) or 0
                self.vars[m.group(1)] = cur + (1 if m.group(2) == "++" else -1)
                continue
            m = re.fullmatch(r"([A-Za-z_]\w*)\s*([-+*/]?=)\s*(.+)", stmt)
            if m and not stmt.startswith("=="):
                name, op, rhs = m.groups()
                val = self.expr(rhs)
                if op == "=":
                    self.vars[name] = val
                else:
                    cur = _awk_num(self.vars.get(name, 0)) or 0
                    v = _awk_num(val) or 0
                    self.vars[name] = {"+=": cur + v, "-=": cur - v, "*=": cur * v,
                                       "/=": cur / v if v else 0}[op]
                continue
            m = re.fullmatch(r"if\s*\((.*)\)\s*(.*)", stmt)
            if m:
                if self.truth(self.expr(m.group(1))):
                    if not self.run_action(m.group(2)):
                        return False
                continue
            self.expr(stmt)
        return True

    def matches(self, pattern: str | None) -> bool:
        if pattern is None:
            return True
        return self.truth(self.expr(pattern))


def _awk_num(v: object) -> float | None:
    if isinstance(v, (int, float)):
        return v
    m = re.match(r"\s*(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)", str(v))
    if not m:
        return None if str(v).strip() else 0
    text = m.group(1)
    return float(text) if any(ch in text for ch in ".eE") else int(text)


def _awk_str(v: object) -> str:
    if isinstance(v, float):
        if v == int(v) and abs(v) < 1e16:
            return str(int(v))
        return f"{v:.6g}"
    return str(v)


def _awk_printf(fmt: str, vals: list) -> str:
    it = iter(vals)

    def conv(m: re.Match) -> str:
        spec = m.group(0)
        if spec == "%%":
            return "%"
        v = next(it, "")
        k = spec[-1]
        try:
            if k in "di":
                return (spec[:-1] + "d") % int(_awk_num(v) or 0)
            if k in "feEgG":
                return spec % float(_awk_num(v) or 0)
            if k == "c":
                return str(v)[:1]
        except (TypeError, ValueError):
            pass
        return (spec[:-1] + "s") % _awk_str(v)

    return re.sub(r"%[-+ 0#]*\d*(?:\.\d+)?[sdifeEgGc%]", conv, _echo_escapes(fmt)[0])


def _split_top(text: str, sep: str, binary: bool = False) -> list[str]:
    parts = []
    depth = 0
    in_str = False
    in_re = False
    start = 0
    i = 0
    while i < len(text):
        c = text[i]
        if c == '"' and (i == 0 or text[i - 1] != "\\"):
            in_str = not in_str
        elif not in_str and c == "/" and sep not in ("/",) and \
                (in_re or i == 0 or text[i - 1] in " ~!(,"):
            in_re = not in_re
        elif not in_str and not in_re:
            if c in "([":
                depth += 1
            elif c in ")]":
                depth -= 1
            elif depth == 0 and text.startswith(sep, i):
                if sep in ("<", ">") and (text[i + 1:i + 2] == "=" or
                                          (i > 0 and text[i - 1] in "<>!=")):
                    i += 1
                    continue
                if sep == "~" and i > 0 and text[i - 1] == "!":
                    i += 1
                    continue
                if sep in ("=",) and text[i + 1:i + 2] == "=":
                    i += 2
                    continue
                if binary:
                    before = text[:i].rstrip()
                    if not before or before[-1] in "+-*/%(,=<>!~":
                        i += 1
                        continue
                    if sep in "+-" and text[i + 1:i + 2] in ("+", "-", "="):
                        i += 2
                        continue
                parts.append(text[start:i])
                i += len(sep)
                start = i
                continue
        i += 1
    parts.append(text[start:])
    return parts


def _terms(text: str) -> list[str]:
    return [t for t in re.findall(r'"(?:[^"\\]|\\.)*"|\$\([^)]*\)|\$\w+|\w+\([^)]*\)|[\w.]+|'
                                  r'\([^)]*\)', text)]


def _split_statements(action: str) -> list[str]:
    out = []
    depth = 0
    in_str = False
    start = 0
    for i, c in enumerate(action):
        if c == '"' and (i == 0 or action[i - 1] != "\\"):
            in_str = not in_str
        elif not in_str and c in "({":
            depth += 1
        elif not in_str and c in ")}":
            depth -= 1
        elif not in_str and depth == 0 and c in ";\n":
            out.append(action[start:i])
            start = i + 1
    out.append(action[start:])
    return out


@command("awk", "gawk", "mawk")
async def awk(ctx: Ctx, argv: list[str]) -> int:
    args = argv[1:]
    fs = None
    assigns: dict[str, str] = {}
    program = None
    while args:
        a = args.pop(0)
        if a == "-F" and args:
            fs = args.pop(0)
        elif a.startswith("-F"):
            fs = a[2:]
        elif a == "-v" and args:
            k, _, v = args.pop(0).partition("=")
            assigns[k] = v
        elif program is None:
            program = a
            break
    if program is None:
        raise UsageError("usage: awk [-F fs][-v var=value][prog | -f progfile][file ...]", 2)
    if fs == "\\t":
        fs = "\t"
    try:
        vm = _Awk(program, fs, assigns)
    except Exception:
        raise UsageError(f"awk: syntax error in program: {program}", 2) from None
    begin = [a for p, a in vm.rules if p == "BEGIN"]
    end = [a for p, a in vm.rules if p == "END"]
    body = [(p, a) for p, a in vm.rules if p not in ("BEGIN", "END")]

    async def flush() -> None:
        if vm.output:
            out, vm.output = vm.output, []
            await ctx.write("".join(out))

    vm.line = ""
    for a in begin:
        vm.run_action(a or "")
    await flush()
    status = [0]
    if body or end:
        async for _, line in _lines(ctx, args, "awk", status):
            vm.vars["NR"] = int(_awk_num(vm.vars["NR"]) or 0) + 1
            vm.split(line.rstrip("\n"))
            for pattern, action in body:
                try:
                    if vm.matches(pattern) and not vm.run_action(action):
                        break
                except (ValueError, re.error, IndexError, TypeError):
                    continue
            await flush()
    for a in end:
        vm.run_action(a or "")
    await flush()
    return status[0]

"""The node shell: a small POSIX-ish interpreter behind every SSH session to a lab node.

`run(machine, line, stdout_write, stderr_write)` runs one command line the way bash would on the
node: quoting, `|`, `&&`, `||`, `;`, redirects, `$(...)`, `sudo`, `bash -c`, `time`, `timeout`.
The commands themselves live in `shell_text` (filters), `shell_systemd` (systemctl, journalctl)
and `shell_node` (everything that reads or changes the machine). Output is streamed through the
writers as it is produced; a writer may return an awaitable to apply back-pressure.
"""

from __future__ import annotations

import asyncio
import fnmatch
import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from lab.machine import Machine

Writer = Callable[[str], Any]
Command = Callable[["Ctx", list[str]], Awaitable[int]]

COMMANDS: dict[str, Command] = {}
BIN_DIRS = ("/usr/bin/", "/bin/", "/usr/sbin/", "/sbin/", "/usr/local/bin/", "/usr/local/sbin/")


def command(*names: str):
    def deco(fn: Command) -> Command:
        for name in names:
            COMMANDS[name] = fn
        return fn
    return deco


class ShellExit(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class UsageError(Exception):
    """A command's own error: printed to stderr, exit status attached."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


# -- streams ---------------------------------------------------------------------------------------
class Reader:
    """A command's standard input."""

    async def read_chunk(self) -> str | None:
        return None

    async def read_all(self) -> str:
        parts = []
        while (chunk := await self.read_chunk()) is not None:
            parts.append(chunk)
        return "".join(parts)

    async def lines(self):
        buf = ""
        while (chunk := await self.read_chunk()) is not None:
            buf += chunk
            if "\n" in buf:
                *complete, buf = buf.split("\n")
                for line in complete:
                    yield line + "\n"
        if buf:
            yield buf

    def close(self) -> None:
        pass


class TextReader(Reader):
    def __init__(self, text: str) -> None:
        self.text: str | None = text

    async def read_chunk(self) -> str | None:
        text, self.text = self.text, None
        return text or None


class ExternalReader(Reader):
    """The session's stdin: anything with `async read(n)` returning '' (or b'') at EOF."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self.eof = False

    async def read_chunk(self) -> str | None:
        if self.eof:
            return None
        data = await self.source.read(65536)
        if not data:
            self.eof = True
            return None
        if isinstance(data, bytes):
            data = data.decode("utf-8", "surrogateescape")
        return data


class Pipe(Reader):
    """A bounded pipe between two pipeline stages; the writer gets EPIPE once the reader is gone."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=32)
        self.reader_closed = False
        self.writer_closed = False

    async def write(self, text: str) -> None:
        if self.reader_closed:
            raise BrokenPipeError
        if text:
            await self.queue.put(text)
            if self.reader_closed:
                raise BrokenPipeError

    async def close_write(self) -> None:
        if not self.writer_closed:
            self.writer_closed = True
            if not self.reader_closed:
                await self.queue.put(None)

    async def read_chunk(self) -> str | None:
        if self.reader_closed:
            return None
        chunk = await self.queue.get()
        if chunk is None:
            self.reader_closed = True
        return chunk

    def close(self) -> None:
        self.reader_closed = True
        while not self.queue.empty():
            self.queue.get_nowait()


class Out:
    """A writer end: callback, pipe, buffer or null."""

    def __init__(self, fn: Writer | None = None, *, pipe: Pipe | None = None,
                 buffer: list[str] | None = None) -> None:
        self.fn = fn
        self.pipe = pipe
        self.buffer = buffer

    async def write(self, text: str) -> None:
        if not text:
            return
        if self.pipe is not None:
            await self.pipe.write(text)
        elif self.buffer is not None:
            self.buffer.append(text)
        elif self.fn is not None:
            result = self.fn(text)
            if inspect.isawaitable(result):
                await result


NULL = Out()


# -- the context a command runs in -----------------------------------------------------------------
@dataclass
class Session:
    """What persists across the lines of one interactive session."""

    machine: Machine
    user: str = "root"
    now_fn: Callable[[], float] = time.time
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = ""
    status: int = 0
    exited: bool = False

    def __post_init__(self) -> None:
        home = "/root" if self.user == "root" else f"/home/{self.user}"
        self.cwd = self.cwd or home
        base = {"HOME": home, "USER": self.user, "LOGNAME": self.user, "SHELL": "/bin/bash",
                "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "HOSTNAME": self.machine.name, "LANG": "C.UTF-8"}
        base.update(self.env)
        self.env = base

    @property
    def home(self) -> str:
        return self.env.get("HOME", "/root")

    def prompt(self) -> str:
        where = "~" if self.cwd == self.home else self.cwd
        sign = "#" if self.user == "root" else "$"
        return f"{self.user}@{self.machine.name}:{where}{sign} "


@dataclass
class Ctx:
    session: Session
    stdin: Reader
    out: Out
    err: Out
    uid: int = 0

    @property
    def machine(self) -> Machine:
        return self.session.machine

    @property
    def root(self) -> bool:
        return self.uid == 0

    @property
    def username(self) -> str:
        return "root" if self.uid == 0 else self.session.user

    def now(self) -> float:
        return self.session.now_fn()

    async def sleep(self, seconds: float) -> None:
        await self.session.sleep(seconds)

    async def write(self, text: str) -> None:
        await self.out.write(text)

    async def error(self, text: str) -> None:
        await self.err.write(text)

    def with_(self, **changes) -> Ctx:
        values = dict(session=self.session, stdin=self.stdin, out=self.out, err=self.err,
                      uid=self.uid)
        values.update(changes)
        return Ctx(**values)

    def abspath(self, path: str) -> str:
        if path == "~" or path.startswith("~/"):
            path = self.session.home + path[1:]
        if not path.startswith("/"):
            path = self.session.cwd.rstrip("/") + "/" + path
        parts: list[str] = []
        for part in path.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if parts:
                    parts.pop()
            else:
                parts.append(part)
        return "/" + "/".join(parts)


# -- lexer -----------------------------------------------------------------------------------------
@dataclass
class Part:
    kind: str  # lit | sub | var
    value: str
    quoted: bool


@dataclass
class Word:
    parts: list[Part]

    def literal(self) -> str | None:
        if all(p.kind == "lit" for p in self.parts):
            return "".join(p.value for p in self.parts)
        return None


OPERATORS = ("&&", "||", ";;", "|", ";", "&", "(", ")")


class SyntaxErr(Exception):
    pass


def _scan_sub(text: str, i: int) -> tuple[str, int]:
    """From just after `$(`, the command text up to the matching `)` and the index after it."""
    depth = 1
    start = i
    quote = ""
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 2
                continue
            if c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c == "\\":
            i += 2
            continue
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return text[start:i], i + 1
        i += 1
    raise SyntaxErr("unexpected EOF while looking for matching `)'")


def _scan_var(text: str, i: int, quoted: bool) -> tuple[Part | None, int]:
    """From just after `$`: a variable part, or None when the `$` is literal."""
    if i < len(text) and text[i] == "{":
        end = text.find("}", i)
        if end < 0:
            raise SyntaxErr("bad substitution")
        return Part("var", text[i + 1:end], quoted), end + 1
    if i < len(text) and text[i] in "?$#!0123456789@*-":
        return Part("var", text[i], quoted), i + 1
    j = i
    while j < len(text) and (text[j].isalnum() or text[j] == "_"):
        j += 1
    if j == i:
        return None, i
    return Part("var", text[i:j], quoted), j


def tokenize(text: str) -> list[tuple[str, Any]]:
    tokens: list[tuple[str, Any]] = []
    parts: list[Part] = []
    in_word = False
    i = 0
    n = len(text)

    def lit(value: str, quoted: bool) -> None:
        if parts and parts[-1].kind == "lit" and parts[-1].quoted == quoted:
            parts[-1].value += value
        else:
            parts.append(Part("lit", value, quoted))

    def flush() -> None:
        nonlocal parts, in_word
        if in_word:
            tokens.append(("word", Word(parts)))
        parts = []
        in_word = False

    while i < n:
        c = text[i]
        if c in " \t":
            flush()
            i += 1
            continue
        if c == "\n":
            flush()
            tokens.append(("op", ";"))
            i += 1
            continue
        if c == "#" and not in_word:
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        if c in "<>":
            fd = None
            if in_word and len(parts) == 1 and parts[0].kind == "lit" and not parts[0].quoted \
                    and parts[0].value.isdigit():
                fd = int(parts[0].value)
                parts = []
                in_word = False
            else:
                flush()
            if text.startswith(">>", i):
                op, i = ">>", i + 2
            elif text.startswith(">&", i):
                op, i = ">&", i + 2
            elif text.startswith("<<<", i):
                op, i = "<<<", i + 3
            elif text.startswith("<<", i):
                raise SyntaxErr("here-documents are not supported")
            else:
                op, i = c, i + 1
            if fd is None:
                fd = 0 if op in ("<", "<<<") else 1
            tokens.append(("redir", (fd, op)))
            continue
        if c == "&" and text.startswith("&>", i) and not in_word:
            flush()
            tokens.append(("redir", (-1, ">")))
            i += 2
            continue
        matched = next((op for op in OPERATORS if text.startswith(op, i)), None)
        if matched:
            flush()
            tokens.append(("op", matched))
            i += len(matched)
            continue
        in_word = True
        if c == "\\":
            if i + 1 < n:
                if text[i + 1] != "\n":
                    lit(text[i + 1], True)
                i += 2
            else:
                i += 1
            continue
        if c == "'":
            end = text.find("'", i + 1)
            if end < 0:
                raise SyntaxErr("unexpected EOF while looking for matching `''")
            lit(text[i + 1:end], True)
            i = end + 1
            continue
        if c == '"':
            i += 1
            buf = ""
            while True:
                if i >= n:
                    raise SyntaxErr("unexpected EOF while looking for matching `\"'")
                d = text[i]
                if d == '"':
                    i += 1
                    break
                if d == "\\" and i + 1 < n and text[i + 1] in '$`"\\\n':
                    if text[i + 1] != "\n":
                        buf += text[i + 1]
                    i += 2
                    continue
                if d == "$" and text.startswith("$(", i) and not text.startswith("$((", i):
                    lit(buf, True)
                    buf = ""
                    sub, i = _scan_sub(text, i + 2)
                    parts.append(Part("sub", sub, True))
                    continue
                if d == "`":
                    end = text.find("`", i + 1)
                    if end < 0:
                        raise SyntaxErr("unexpected EOF while looking for matching ``'")
                    lit(buf, True)
                    buf = ""
                    parts.append(Part("sub", text[i + 1:end], True))
                    i = end + 1
                    continue
                if d == "$":
                    part, j = _scan_var(text, i + 1, True)
                    if part is not None:
                        lit(buf, True)
                        buf = ""
                        parts.append(part)
                        i = j
                        continue
                buf += d
                i += 1
            lit(buf, True)
            continue
        if c == "$" and text.startswith("$(", i) and not text.startswith("$((", i):
            sub, i = _scan_sub(text, i + 2)
            parts.append(Part("sub", sub, False))
            continue
        if c == "`":
            end = text.find("`", i + 1)
            if end < 0:
                raise SyntaxErr("unexpected EOF while looking for matching ``'")
            parts.append(Part("sub", text[i + 1:end], False))
            i = end + 1
            continue
        if c == "$":
            part, j = _scan_var(text, i + 1, False)
            if part is not None:
                parts.append(part)
                i = j
                continue
        lit(c, False)
        i += 1
    flush()
    return tokens


# -- parser ----------------------------------------------------------------------------------------
@dataclass
class Simple:
    words: list[Word]
    redirects: list[tuple[int, str, Word]]
    assigns: list[tuple[str, Word]]


@dataclass
class Pipeline:
    commands: list[Simple]
    negate: bool = False
    timed: bool = False


@dataclass
class AndOr:
    first: Pipeline
    rest: list[tuple[str, Pipeline]]


def parse(text: str) -> list[AndOr]:
    tokens = tokenize(text)
    pos = 0

    def peek():
        return tokens[pos] if pos < len(tokens) else ("eof", None)

    def simple() -> Simple:
        nonlocal pos
        cmd = Simple([], [], [])
        while True:
            kind, value = peek()
            if kind == "word":
                lit = value.literal()
                if not cmd.words and lit is not None and "=" in lit and \
                        lit.split("=", 1)[0].isidentifier():
                    name = lit.split("=", 1)[0]
                    rest_parts = _strip_prefix(value, len(name) + 1)
                    cmd.assigns.append((name, rest_parts))
                elif not cmd.words and value.parts and value.parts[0].kind == "lit" and \
                        not value.parts[0].quoted and "=" in value.parts[0].value and \
                        value.parts[0].value.split("=", 1)[0].isidentifier():
                    name = value.parts[0].value.split("=", 1)[0]
                    cmd.assigns.append((name, _strip_prefix(value, len(name) + 1)))
                else:
                    cmd.words.append(value)
                pos += 1
            elif kind == "redir":
                pos += 1
                k2, target = peek()
                if k2 != "word":
                    raise SyntaxErr(f"syntax error near unexpected token `{target or 'newline'}'")
                pos += 1
                cmd.redirects.append((value[0], value[1], target))
            else:
                break
        return cmd

    def pipeline() -> Pipeline:
        nonlocal pos
        negate = timed = False
        while True:
            kind, value = peek()
            if kind == "word" and value.literal() == "time" and not timed:
                timed = True
                pos += 1
                continue
            if kind == "word" and value.literal() == "!" and not negate:
                negate = True
                pos += 1
                continue
            break
        cmds = [simple()]
        while peek() == ("op", "|"):
            pos += 1
            while peek() == ("op", ";") and False:
                pos += 1
            cmds.append(simple())
        for c in cmds:
            if not c.words and not c.redirects and not c.assigns:
                kind, value = peek()
                raise SyntaxErr(f"syntax error near unexpected token `{value or 'newline'}'")
        return Pipeline(cmds, negate, timed)

    items: list[AndOr] = []
    while True:
        while peek() in (("op", ";"), ("op", "&")):
            if not items and peek() == ("op", ";") and tokens and pos == 0 and len(tokens) > 1 \
                    and tokens[0] == ("op", ";") and text.strip().startswith(";"):
                raise SyntaxErr("syntax error near unexpected token `;'")
            pos += 1
        if peek()[0] == "eof":
            break
        if peek()[0] == "op" and peek()[1] not in ("!",):
            raise SyntaxErr(f"syntax error near unexpected token `{peek()[1]}'")
        first = pipeline()
        rest = []
        while peek() in (("op", "&&"), ("op", "||")):
            op = peek()[1]
            pos += 1
            while peek() == ("op", ";") and text.count("\n"):
                pos += 1
            rest.append((op, pipeline()))
        items.append(AndOr(first, rest))
        kind, value = peek()
        if kind == "eof":
            break
        if (kind, value) not in (("op", ";"), ("op", "&")):
            raise SyntaxErr(f"syntax error near unexpected token `{value}'")
    return items


def _strip_prefix(word: Word, count: int) -> Word:
    parts = []
    for p in word.parts:
        if count <= 0:
            parts.append(p)
        elif p.kind == "lit" and len(p.value) > count:
            parts.append(Part("lit", p.value[count:], p.quoted))
            count = 0
        elif p.kind == "lit":
            count -= len(p.value)
        else:
            parts.append(p)
            count = 0
    return Word(parts)


# -- execution -------------------------------------------------------------------------------------
async def run_script(ctx: Ctx, text: str) -> int:
    try:
        items = parse(text)
    except SyntaxErr as exc:
        await ctx.error(f"bash: {exc}\n")
        ctx.session.status = 2
        return 2
    status = ctx.session.status
    for item in items:
        status = await run_pipeline(ctx, item.first)
        for op, pipe in item.rest:
            if (op == "&&" and status == 0) or (op == "||" and status != 0):
                status = await run_pipeline(ctx, pipe)
        ctx.session.status = status
    return status


async def run_pipeline(ctx: Ctx, pipeline: Pipeline) -> int:
    started = ctx.now()
    wall = time.monotonic()
    if len(pipeline.commands) == 1:
        status = await run_simple(ctx, pipeline.commands[0])
    else:
        pipes = [Pipe() for _ in pipeline.commands[1:]]
        tasks = []
        for i, cmd in enumerate(pipeline.commands):
            stdin = ctx.stdin if i == 0 else pipes[i - 1]
            out = ctx.out if i == len(pipeline.commands) - 1 else Out(pipe=pipes[i])
            tasks.append(asyncio.ensure_future(
                _stage(ctx.with_(stdin=stdin, out=out), cmd,
                       pipes[i] if i < len(pipes) else None,
                       pipes[i - 1] if i > 0 else None)))
        try:
            results = await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        status = results[-1]
    if pipeline.negate:
        status = 0 if status else 1
    if pipeline.timed:
        real = max(ctx.now() - started, time.monotonic() - wall if ctx.session.sleep is
                   asyncio.sleep else 0.0)
        await ctx.error(f"\nreal\t{_bash_time(real)}\nuser\t{_bash_time(real * 0.012)}\n"
                        f"sys\t{_bash_time(real * 0.008)}\n")
    return status


def _bash_time(seconds: float) -> str:
    minutes, secs = divmod(max(0.0, seconds), 60)
    return f"{int(minutes)}m{secs:.3f}s"


async def _stage(ctx: Ctx, cmd: Simple, out_pipe: Pipe | None, in_pipe: Pipe | None) -> int:
    try:
        return await run_simple(ctx, cmd)
    except BrokenPipeError:
        return 141
    finally:
        if out_pipe is not None:
            await out_pipe.close_write()
        if in_pipe is not None:
            in_pipe.close()


async def expand_word(ctx: Ctx, word: Word) -> list[str]:
    """A word after substitution, field splitting and pathname expansion."""
    fields: list[str] = [""]
    any_quoted = False
    glob = False
    for part in word.parts:
        if part.kind == "lit":
            fields[-1] += part.value
            any_quoted = any_quoted or part.quoted
            if not part.quoted and any(ch in part.value for ch in "*?["):
                glob = True
            continue
        if part.kind == "var":
            value = _var(ctx, part.value)
        else:
            value = await substitute(ctx, part.value)
        if part.quoted:
            fields[-1] += value
            any_quoted = True
            continue
        pieces = value.split()
        if not pieces:
            continue
        if value[:1].isspace() and fields[-1]:
            fields.append("")
        fields[-1] += pieces[0]
        for piece in pieces[1:]:
            fields.append(piece)
        if value[-1:].isspace():
            fields.append("")
    if fields and fields[-1] == "" and len(fields) > 1:
        fields.pop()
    if fields == [""] and not any_quoted:
        return []
    if glob:
        out = []
        for f in fields:
            out.extend(_glob(ctx, f))
        return out
    return fields


def _glob(ctx: Ctx, pattern: str) -> list[str]:
    from lab import shell_fs

    if "/" not in pattern and not pattern.startswith("~"):
        base = ctx.session.cwd
        names = shell_fs.listdir(ctx.machine, base, ctx.now())
        matched = sorted(n for n in names or [] if fnmatch.fnmatch(n, pattern)
                         and not n.startswith("."))
        return matched or [pattern]
    full = ctx.abspath(pattern)
    directory, _, name_pat = full.rpartition("/")
    names = shell_fs.listdir(ctx.machine, directory or "/", ctx.now())
    matched = sorted(f"{directory}/{n}" for n in names or []
                     if fnmatch.fnmatch(n, name_pat) and not n.startswith("."))
    return matched or [pattern]


def _var(ctx: Ctx, name: str) -> str:
    if name == "?":
        return str(ctx.session.status)
    if name == "$":
        return "4242"
    if name in ("#", "0"):
        return "0" if name == "#" else "-bash"
    return ctx.session.env.get(name, "")


async def substitute(ctx: Ctx, text: str) -> str:
    buf: list[str] = []
    sub = ctx.with_(out=Out(buffer=buf), stdin=TextReader(""))
    saved = ctx.session.status
    status = await run_script(sub, text)
    ctx.session.status = saved if status == 0 else status
    return "".join(buf).rstrip("\n")


async def run_simple(ctx: Ctx, cmd: Simple) -> int:
    argv: list[str] = []
    for word in cmd.words:
        argv.extend(await expand_word(ctx, word))
    assigns = {}
    for name, word in cmd.assigns:
        assigns[name] = "".join(await expand_word(ctx, word)) if word.parts else ""
    if not argv:
        if assigns:
            ctx.session.env.update(assigns)
        if cmd.redirects:
            return await _with_redirects(ctx, cmd, [])
        return 0
    return await _with_redirects(ctx, cmd, argv)


async def _with_redirects(ctx: Ctx, cmd: Simple, argv: list[str]) -> int:
    fds: dict[int, Any] = {0: ctx.stdin, 1: ctx.out, 2: ctx.err}
    files: list[tuple[str, list[str], bool]] = []
    from lab import shell_fs

    for fd, op, target_word in cmd.redirects:
        targets = await expand_word(ctx, target_word)
        target = targets[0] if len(targets) == 1 else None
        if target is None:
            await ctx.error(f"bash: {target_word.literal() or '$...'}: ambiguous redirect\n")
            return 1
        if op == ">&" or (op == ">" and fd == -1):
            pass
        if op == ">&":
            if target.isdigit() and int(target) in fds:
                fds[fd] = fds[int(target)]
                continue
            if target == "-":
                fds[fd] = NULL
                continue
            op = ">"
            fd = -1 if fd == 1 else fd
        if op in ("<", "<<<"):
            if op == "<<<":
                fds[fd] = TextReader(target + "\n")
                continue
            content = shell_fs.read_file(ctx.machine, ctx.abspath(target), ctx.now())
            if content is None:
                await ctx.error(f"bash: {target}: No such file or directory\n")
                return 1
            fds[fd] = TextReader(content)
            continue
        path = ctx.abspath(target)
        if path in ("/dev/null",):
            writer = NULL
        elif path in ("/dev/stdout", "/dev/fd/1"):
            writer = ctx.out
        elif path in ("/dev/stderr", "/dev/fd/2"):
            writer = ctx.err
        else:
            problem = shell_fs.write_problem(ctx.machine, path, ctx.uid, ctx.now())
            if problem:
                await ctx.error(f"bash: {target}: {problem}\n")
                return 1
            buf: list[str] = []
            files.append((path, buf, op == ">>"))
            writer = Out(buffer=buf)
            if op == ">":
                shell_fs.write(ctx.machine, path, "", ctx.now())
        if fd == -1:
            fds[1] = fds[2] = writer
        else:
            fds[fd] = writer
    sub = ctx.with_(stdin=fds[0], out=fds[1], err=fds[2])
    try:
        if argv:
            return await dispatch(sub, argv)
        return 0
    finally:
        for path, buf, append in files:
            shell_fs.write(ctx.machine, path, "".join(buf), ctx.now(), append=append)


def resolve(name: str) -> str | None:
    if name in COMMANDS:
        return name
    for d in BIN_DIRS:
        if name.startswith(d) and name[len(d):] in COMMANDS:
            return name[len(d):]
    return None


async def dispatch(ctx: Ctx, argv: list[str]) -> int:
    _load_commands()
    name = resolve(argv[0])
    if name is None:
        if "/" in argv[0]:
            await ctx.error(f"bash: {argv[0]}: No such file or directory\n")
        else:
            await ctx.error(f"bash: {argv[0]}: command not found\n")
        return 127
    try:
        return await COMMANDS[name](ctx, argv)
    except UsageError as exc:
        if exc.message:
            await ctx.error(exc.message if exc.message.endswith("\n") else exc.message + "\n")
        return exc.code


_loaded = False


def _load_commands() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        from lab import shell_node, shell_systemd, shell_text  # noqa: F401  (they register)


# -- shell builtins and prefix commands --------------------------------------------------------
@command("exit", "logout")
async def _exit(ctx: Ctx, argv: list[str]) -> int:
    code = ctx.session.status
    if len(argv) > 1:
        try:
            code = int(argv[1]) & 0xFF
        except ValueError:
            await ctx.error(f"bash: exit: {argv[1]}: numeric argument required\n")
            code = 2
    ctx.session.exited = True
    raise ShellExit(code)


@command("true", ":")
async def _true(ctx: Ctx, argv: list[str]) -> int:
    return 0


@command("false")
async def _false(ctx: Ctx, argv: list[str]) -> int:
    return 1


@command("cd")
async def _cd(ctx: Ctx, argv: list[str]) -> int:
    from lab import shell_fs

    target = ctx.abspath(argv[1]) if len(argv) > 1 else ctx.session.home
    if not shell_fs.is_dir(ctx.machine, target, ctx.now()):
        await ctx.error(f"bash: cd: {argv[1]}: No such file or directory\n")
        return 1
    ctx.session.cwd = target
    return 0


@command("pwd")
async def _pwd(ctx: Ctx, argv: list[str]) -> int:
    await ctx.write(ctx.session.cwd + "\n")
    return 0


@command("export")
async def _export(ctx: Ctx, argv: list[str]) -> int:
    for arg in argv[1:]:
        if "=" in arg:
            k, v = arg.split("=", 1)
            ctx.session.env[k] = v
    return 0


@command("unset")
async def _unset(ctx: Ctx, argv: list[str]) -> int:
    for arg in argv[1:]:
        ctx.session.env.pop(arg, None)
    return 0


@command("sleep")
async def _sleep(ctx: Ctx, argv: list[str]) -> int:
    if len(argv) < 2:
        raise UsageError("sleep: missing operand\nTry 'sleep --help' for more information.")
    total = 0.0
    for arg in argv[1:]:
        mult = {"s": 1, "m": 60, "h": 3600, "d": 86400}.get(arg[-1:], None)
        try:
            total += float(arg[:-1]) * mult if mult else float(arg)
        except ValueError:
            raise UsageError(f"sleep: invalid time interval '{arg}'\n"
                             "Try 'sleep --help' for more information.") from None
    await ctx.sleep(total)
    return 0


@command("sudo")
async def _sudo(ctx: Ctx, argv: list[str]) -> int:
    args = argv[1:]
    uid = 0
    while args and args[0].startswith("-"):
        opt = args.pop(0)
        if opt == "--":
            break
        if opt in ("-u", "-g") and args:
            who = args.pop(0)
            if opt == "-u":
                uid = 0 if who in ("root", "#0") else 1000
        elif opt.startswith("-u") and len(opt) > 2:
            uid = 0 if opt[2:] in ("root", "#0") else 1000
        elif opt in ("-v", "-k", "-K"):
            return 0
        elif opt == "-l":
            await ctx.write(f"User {ctx.session.user} may run the following commands on "
                            f"{ctx.machine.name}:\n    (ALL : ALL) NOPASSWD: ALL\n")
            return 0
        elif opt[1:] and all(ch in "nEHiSsAbP" for ch in opt[1:]):
            continue
        else:
            raise UsageError(f"sudo: invalid option -- '{opt.lstrip('-')[:1]}'\n"
                             "usage: sudo -h | -K | -k | -V", 1)
    while args and "=" in args[0] and args[0].split("=", 1)[0].isidentifier():
        args.pop(0)
    if not args:
        raise UsageError("usage: sudo -h | -K | -k | -V\nusage: sudo -v [-ABknS] [-g group] "
                         "[-h host] [-p prompt] [-u user]", 1)
    if resolve(args[0]) is None and args[0] not in COMMANDS:
        _load_commands()
        if resolve(args[0]) is None:
            await ctx.error(f"sudo: {args[0]}: command not found\n")
            return 1
    return await dispatch(ctx.with_(uid=uid), args)


@command("bash", "sh", "dash")
async def _bash(ctx: Ctx, argv: list[str]) -> int:
    args = argv[1:]
    script = None
    while args:
        a = args.pop(0)
        if a == "-c" and args:
            script = args.pop(0)
            break
        if a.startswith("-") and "c" in a[1:] and args:
            script = args.pop(0)
            break
        if a.startswith("-"):
            continue
        content = None
        from lab import shell_fs

        content = shell_fs.read_file(ctx.machine, ctx.abspath(a), ctx.now())
        if content is None:
            await ctx.error(f"{argv[0]}: {a}: No such file or directory\n")
            return 127
        script = content
        break
    if script is None:
        script = await ctx.stdin.read_all()
    child = Session(ctx.machine, ctx.session.user, ctx.session.now_fn, ctx.session.sleep,
                    dict(ctx.session.env), ctx.session.cwd)
    try:
        return await run_script(ctx.with_(session=child), script)
    except ShellExit as exc:
        return exc.code


@command("env")
async def _env(ctx: Ctx, argv: list[str]) -> int:
    args = argv[1:]
    while args and ("=" in args[0] or args[0] == "-i"):
        a = args.pop(0)
        if "=" in a:
            k, v = a.split("=", 1)
            ctx.session.env[k] = v
    if not args:
        await ctx.write("".join(f"{k}={v}\n" for k, v in ctx.session.env.items()))
        return 0
    return await dispatch(ctx, args)


@command("nice", "nohup", "stdbuf", "ionice", "command", "exec", "builtin")
async def _prefix(ctx: Ctx, argv: list[str]) -> int:
    args = argv[1:]
    if argv[0] == "command" and args and args[0] in ("-v", "-V"):
        return await dispatch(ctx, ["which"] + args[1:])
    while args and args[0].startswith("-"):
        opt = args.pop(0)
        if opt in ("-n", "-c", "-o", "-e", "-i") and args and argv[0] != "command":
            args.pop(0)
    if not args:
        return 0
    return await dispatch(ctx, args)


@command("which", "type")
async def _which(ctx: Ctx, argv: list[str]) -> int:
    _load_commands()
    status = 0
    for name in argv[1:]:
        if name.startswith("-"):
            continue
        if resolve(name) and name not in ("exit", "cd", "export", "unset", "pwd", "type"):
            path = "/usr/sbin/" + name if name in ("modprobe", "lsmod", "swapoff", "swapon",
                                                    "ss", "ip", "reboot", "shutdown",
                                                    "chronyd") else "/usr/bin/" + name
            await ctx.write(path + "\n" if argv[0] == "which" else f"{name} is {path}\n")
        else:
            if argv[0] == "type":
                await ctx.error(f"bash: type: {name}: not found\n")
            status = 1
    return status


@command("timeout")
async def _timeout(ctx: Ctx, argv: list[str]) -> int:
    args = argv[1:]
    signal = "TERM"
    while args and args[0].startswith("-") and not _is_duration(args[0]):
        opt = args.pop(0)
        if opt in ("-s", "--signal", "-k", "--kill-after") and args:
            value = args.pop(0)
            if opt in ("-s", "--signal"):
                signal = value
        elif opt.startswith("--signal="):
            signal = opt.split("=", 1)[1]
        elif opt in ("--preserve-status", "--foreground", "-v", "--verbose"):
            continue
    if len(args) < 2:
        raise UsageError("timeout: missing operand\nTry 'timeout --help' for more information.",
                         125)
    duration = _parse_duration(args[0])
    if duration is None:
        raise UsageError(f"timeout: invalid time interval '{args[0]}'\n"
                         "Try 'timeout --help' for more information.", 125)
    task = asyncio.ensure_future(dispatch(ctx, args[1:]))
    if duration <= 0:
        return await task
    timer = asyncio.ensure_future(ctx.sleep(duration))
    try:
        done, _ = await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        timer.cancel()
        raise
    if task in done:
        timer.cancel()
        return task.result()
    task.cancel()
    try:
        await task
    except (asyncio.CancelledError, Exception):
        pass
    return 137 if signal.upper().lstrip("SIG") in ("KILL", "9") else 124


def _is_duration(text: str) -> bool:
    return _parse_duration(text) is not None


def _parse_duration(text: str) -> float | None:
    mult = {"s": 1, "m": 60, "h": 3600, "d": 86400}.get(text[-1:])
    try:
        return float(text[:-1]) * mult if mult else float(text)
    except ValueError:
        return None


@command("time")
async def _time_cmd(ctx: Ctx, argv: list[str]) -> int:
    started = ctx.now()
    status = await dispatch(ctx, argv[1:]) if len(argv) > 1 else 0
    real = ctx.now() - started
    await ctx.error(f"\nreal\t{_bash_time(real)}\nuser\t{_bash_time(real * 0.012)}\n"
                    f"sys\t{_bash_time(real * 0.008)}\n")
    return status


# -- entry points ----------------------------------------------------------------------------------
async def run(machine: Machine, command_line: str, stdout_write: Writer, stderr_write: Writer, *,
              stdin: Any = None, user: str = "root", now_fn: Callable[[], float] = time.time,
              sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
              session: Session | None = None) -> int:
    """Run one command line on `machine`; returns the exit status bash would."""
    if session is None:
        session = Session(machine, user, now_fn, sleep)
    return await run_line(session, command_line, stdout_write, stderr_write, stdin=stdin)


async def run_line(session: Session, command_line: str, stdout_write: Writer,
                   stderr_write: Writer, *, stdin: Any = None) -> int:
    if stdin is None:
        reader: Reader = TextReader("")
    elif isinstance(stdin, Reader):
        reader = stdin
    elif isinstance(stdin, (str, bytes)):
        reader = TextReader(stdin if isinstance(stdin, str) else
                            stdin.decode("utf-8", "surrogateescape"))
    else:
        reader = ExternalReader(stdin)
    ctx = Ctx(session, reader, Out(stdout_write), Out(stderr_write),
              uid=0 if session.user == "root" else 1000)
    _load_commands()
    try:
        status = await run_script(ctx, command_line)
    except ShellExit as exc:
        status = exc.code
    except BrokenPipeError:
        status = 141
    session.status = status
    return status

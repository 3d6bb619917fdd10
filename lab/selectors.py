"""Label and field selectors with the API server's grammar and error wording."""

from __future__ import annotations

import re
from collections.abc import Callable

from lab.store import Stored


class SelectorError(ValueError):
    pass


Predicate = Callable[[Stored], bool]

_TOKEN = re.compile(r"\s*(!=|==|=|!|\(|\)|,|[^\s!=(),]+)")


def _tokens(text: str) -> list[str]:
    out = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            if text[pos:].strip() == "":
                break
            raise SelectorError(f"unable to parse requirement: {text[pos:]!r}")
        if m.group(1):
            out.append(m.group(1))
        pos = m.end()
    return out


_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _check_value(value: str) -> str:
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        raise SelectorError(
            f"unable to parse requirement: values[0][{value}]: Invalid value: {value!r}: a valid "
            "label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
            "and must start and end with an alphanumeric character"
        )
    return value


def parse_label_selector(text: str | None) -> Callable[[dict[str, str]], bool] | None:
    """Parse `app=x,tier in (a,b),!gone,env notin (dev)`; None for an empty selector."""
    if not text or not text.strip():
        return None
    toks = _tokens(text)
    reqs: list[Callable[[dict[str, str]], bool]] = []
    i = 0
    n = len(toks)

    def expect_values(j: int) -> tuple[set[str], int]:
        if j >= n or toks[j] != "(":
            found = toks[j] if j < n else ""
            raise SelectorError(f"unable to parse requirement: found '{found}', expected: '('")
        j += 1
        values: set[str] = set()
        expect_value = True
        while j < n and toks[j] != ")":
            tok = toks[j]
            if tok == ",":
                if expect_value:
                    values.add("")
                expect_value = True
            else:
                if not expect_value:
                    raise SelectorError(
                        f"unable to parse requirement: found '{tok}', expected: ','")
                values.add(_check_value(tok))
                expect_value = False
            j += 1
        if j >= n:
            raise SelectorError("unable to parse requirement: found '', expected: ')'")
        return values, j + 1

    while i < n:
        tok = toks[i]
        if tok == "!":
            if i + 1 >= n:
                raise SelectorError("unable to parse requirement: found '', expected: identifier")
            key = toks[i + 1]
            reqs.append(lambda labels, k=key: k not in labels)
            i += 2
        else:
            if tok in ("=", "==", "!=", "(", ")", ","):
                raise SelectorError(
                    f"unable to parse requirement: found '{tok}', expected: identifier")
            key = tok
            i += 1
            if i >= n or toks[i] == ",":
                reqs.append(lambda labels, k=key: k in labels)
            else:
                op = toks[i]
                i += 1
                if op in ("=", "=="):
                    value = _check_value(toks[i]) if i < n and toks[i] != "," else ""
                    if i < n and toks[i] != ",":
                        i += 1
                    reqs.append(lambda labels, k=key, v=value: labels.get(k) == v)
                elif op == "!=":
                    value = _check_value(toks[i]) if i < n and toks[i] != "," else ""
                    if i < n and toks[i] != ",":
                        i += 1
                    reqs.append(lambda labels, k=key, v=value: labels.get(k) != v)
                elif op == "in":
                    values, i = expect_values(i)
                    reqs.append(lambda labels, k=key, vs=values: k in labels and labels[k] in vs)
                elif op == "notin":
                    values, i = expect_values(i)
                    reqs.append(lambda labels, k=key, vs=values: labels.get(k) not in vs)
                else:
                    raise SelectorError(
                        f"unable to parse requirement: found '{op}', expected: "
                        "in, notin, =, ==, !=, gt, lt"
                    )
        if i < n:
            if toks[i] != ",":
                raise SelectorError(f"found '{toks[i]}', expected: ',' or 'end of string'")
            i += 1
            if i >= n:
                raise SelectorError("found '', expected: identifier after ','")

    if len(reqs) == 1:
        return reqs[0]
    return lambda labels: all(r(labels) for r in reqs)


def _split_unescaped(text: str, sep: str) -> list[str]:
    out, cur, esc = [], [], False
    for ch in text:
        if esc:
            cur.append(ch)
            esc = False
        elif ch == "\\":
            cur.append(ch)
            esc = True
        elif ch == sep:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def parse_field_selector(text: str | None) -> list[tuple[str, str, bool]] | None:
    """Parse `a=b,c!=d` into (key, value, equal) terms; None for an empty selector."""
    if not text or not text.strip():
        return None
    terms = []
    for part in _split_unescaped(text, ","):
        part = part.strip()
        if not part:
            continue
        for op, equal in (("!=", False), ("==", True), ("=", True)):
            idx = part.find(op)
            if idx > 0:
                key = part[:idx].strip()
                value = _unescape(part[idx + len(op):])
                terms.append((key, value, equal))
                break
        else:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
    return terms or None


def _dig(obj: dict, dotted: str) -> str:
    cur: object = obj
    for part in dotted.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def field_value(stored: Stored, key: str) -> str:
    if key == "metadata.name":
        return stored.name
    if key == "metadata.namespace":
        return stored.namespace
    value = stored.fields.get(key)
    if value is not None:
        return value
    return _dig(stored.object(), key)


def make_predicate(label_selector: str | None, field_selector: str | None,
                   known_fields: set[str] | None = None, resource: str = "") -> Predicate | None:
    """One predicate over Stored items, or None when nothing is selected on.

    `known_fields`, when given, are the field keys the resource supports; others are refused with
    the API server's message."""
    labels = parse_label_selector(label_selector)
    fields = parse_field_selector(field_selector)
    if fields and known_fields is not None:
        for key, _, _ in fields:
            if key not in known_fields and key not in ("metadata.name", "metadata.namespace"):
                raise SelectorError(f"field label not supported: {key}")
    if labels is None and fields is None:
        return None

    def pred(stored: Stored) -> bool:
        if labels is not None and not labels(stored.labels):
            return False
        if fields is not None:
            for key, value, equal in fields:
                if (field_value(stored, key) == value) != equal:
                    return False
        return True

    return pred

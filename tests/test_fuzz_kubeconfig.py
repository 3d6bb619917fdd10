"""Fuzzing probes.kubeconfig (and probes.credentials behind it): random YAML-ish text and
documents shaped like kubeconfigs with wrong types. Reading, listing contexts, resolving one
and building its credentials either work or raise KubeError with a one-line message; never any
other exception. No exec plugin that could exist is ever run: drawn commands are missing paths."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probes.kubeconfig import Kubeconfig, KubeError, list_contexts

FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
WORK = Path(tempfile.mkdtemp(prefix="nodewb-fuzz-kubeconfig-"))
MISSING_PLUGIN = "/nonexistent/nodewb-fuzz-plugin"

scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 10 ** 30),
                    st.floats(allow_nan=True), st.text(max_size=12),
                    st.sampled_from(["", "~", "a", "ctx", "c1", "u1", "https://127.0.0.1:1",
                                     "relative/ca.crt", "/nonexistent/ca.crt", "a\x00b",
                                     "bm90IGJhc2U2NA==", "!!!", "2020-01-01"]))
junk = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6)
names = st.sampled_from(["c1", "u1", "ctx", "", "x"])

exec_specs = st.one_of(junk, st.fixed_dictionaries(
    {"command": st.sampled_from([MISSING_PLUGIN, "", 5, None, ["x"]])},
    optional={"apiVersion": st.sampled_from(["client.authentication.k8s.io/v1", "v0", 3]),
              "args": junk, "env": junk, "installHint": junk, "provideClusterInfo": junk}))
users = st.fixed_dictionaries({}, optional={
    "token": junk,
    "tokenFile": st.one_of(junk, st.sampled_from(["/dev/null", "/", "/nonexistent"])),
    "client-certificate": junk, "client-key": junk,
    "client-certificate-data": junk, "client-key-data": junk, "username": junk, "password": junk,
    "exec": exec_specs,
    "auth-provider": st.one_of(scalars, st.just({"name": "nodewb-fuzz"}), st.lists(scalars)),
})
clusters = st.fixed_dictionaries({}, optional={
    "server": st.one_of(junk, st.just("https://127.0.0.1:1")),
    "certificate-authority": junk, "certificate-authority-data": junk,
    "insecure-skip-tls-verify": junk, "tls-server-name": junk, "proxy-url": junk,
    "extensions": junk,
})
contexts = st.fixed_dictionaries({}, optional={"cluster": st.one_of(names, junk),
                                               "user": st.one_of(names, junk),
                                               "namespace": junk})


def entries(key: str, inner):
    entry = st.one_of(st.fixed_dictionaries({"name": st.one_of(names, junk), key: inner}),
                      st.fixed_dictionaries({"name": names}), junk)
    return st.one_of(st.lists(entry, max_size=3), junk)


coherent = st.builds(
    lambda cluster, user, ctx_extra: {
        "clusters": [{"name": "c1", "cluster": cluster}],
        "users": [{"name": "u1", "user": user}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c1", "user": "u1", **ctx_extra}}],
        "current-context": "ctx"},
    st.one_of(clusters.map(lambda c: {"server": "https://127.0.0.1:1", **c}), clusters),
    users, st.dictionaries(st.sampled_from(["namespace", "extensions"]), junk, max_size=1))
documents = st.one_of(
    coherent, coherent,
    st.fixed_dictionaries({}, optional={
        "apiVersion": junk, "kind": junk,
        "clusters": entries("cluster", st.one_of(clusters, junk)),
        "users": entries("user", st.one_of(users, junk)),
        "contexts": entries("context", st.one_of(contexts, junk)),
        "current-context": st.one_of(names, junk),
    }),
    junk,
)
texts = st.one_of(
    st.text(max_size=300),
    st.lists(st.sampled_from(["clusters:", "- name: c1", "  cluster:", "    server: x",
                              "users: [", "contexts: {}", "current-context: ctx", "&a [*a]",
                              "- &x {a: *x}", "!!python/object:os.system x", "\t", "? ", ": :",
                              "'", '"', "{", "]", "--- ", "...", "%YAML 9.9", "[" * 300]),
             max_size=12).map("\n".join),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
)


def exercise(path: Path) -> None:
    try:
        config = Kubeconfig(str(path))
    except KubeError as err:
        assert str(err) and "\n" not in str(err).strip()
        return
    for ctx in [None, *[c.name for c in config.contexts()]]:
        try:
            resolved = config.resolve(ctx)
            configuration, _ = resolved.configuration()
        except KubeError as err:
            assert str(err)
            continue
        assert isinstance(resolved.server, str)
        del configuration


def write(name: str, text: str | bytes) -> Path:
    path = WORK / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
    return path


@FUZZ
@given(documents)
def test_kubeconfig_documents(doc) -> None:
    exercise(write("doc.yaml", yaml.safe_dump(doc, allow_unicode=True)))


@FUZZ
@given(texts)
def test_kubeconfig_text(text: str) -> None:
    path = write("text.yaml", text.encode("utf-8", "surrogatepass"))
    exercise(path)
    try:
        list_contexts(str(path))
    except KubeError:
        pass


def test_deeply_nested_document() -> None:
    exercise(write("deep.yaml", "[" * 20_000))


def test_token_file_that_is_a_descriptor_number() -> None:
    """`tokenFile: 1` must not be opened as file descriptor 1 (and close it)."""
    doc = {"clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
           "users": [{"name": "u", "user": {"tokenFile": 1}}],
           "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
           "current-context": "x"}
    path = write("fd.yaml", yaml.safe_dump(doc))
    try:
        Kubeconfig(str(path)).resolve().configuration()
    except KubeError as err:
        assert "tokenFile" in str(err)
    else:
        raise AssertionError("an int tokenFile was accepted")
    os.fstat(1)  # still open


def test_a_server_that_is_a_list_is_a_clear_error() -> None:
    """Found by the fuzzer: the client library's loader raised AttributeError on it."""
    doc = {"clusters": [{"name": "c1", "cluster": {"server": [None]}}],
           "users": [{"name": "u1", "user": {"auth-provider": "0"}}],
           "contexts": [{"name": "ctx", "context": {"cluster": "c1", "user": "u1"}}],
           "current-context": "ctx"}
    exercise(write("list-server.yaml", yaml.safe_dump(doc)))

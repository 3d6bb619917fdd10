"""Fuzzing triage.evidence_read.read_evidence: random evidence directories and files, and tar
bundles with ../ paths, absolute paths, symbolic and hard links, devices, fifos, duplicates and
odd names. Reading never raises (anything wrong inside becomes a note), never writes outside its
own scratch directory, and leaves nothing behind.

Crashes found earlier have a test each below."""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probes.observation import Observation, Status
from triage.evidence_read import Evidence, read_evidence

FUZZ = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])

FILE_NAMES = ["kubelet.log", "containerd.log", "dmesg.txt", "node.json", "metrics",
              "metrics.txt", "goroutines.txt", "df.txt", "df-i.txt", "crictl-ps.txt",
              "crictl-pods.txt", "crictl-info.json", "openssl-dates.txt", "lsmod.txt",
              "systemctl-show-kubelet.txt", "ps-kubelet.txt", "manifest.json", "events.json",
              "unknown.bin", "x"]
CONTENTS = [
    "Jan  5 10:00:01 n kubelet[1]: PLEG is not healthy: pleg was last seen active 3m0s ago",
    "Filesystem Size Used Avail Use% Mounted on\n/dev/x 10G 9.5G 0.5G 95% /var/lib/kubelet",
    "Filesystem Inodes IUsed IFree IUse% Mounted on\n/dev/x 100 100 0 100% /",
    "Module Size Used by\noverlay 1 0", "ActiveState=failed\nSubState=failed\nNRestarts=9",
    "notAfter=Jan  1 00:00:00 2020 GMT", "go_goroutines 9000\nprocess_resident_memory_bytes 1e9",
    "goroutine profile: total 12", '{"kind": "Node", "metadata": {"name": "node-0001"}}',
    '{"kind": "NodeList", "items": [1, {}, []]}', '{"node": "node-0001", "captured": 1.7e9}',
    '{"node": {"name": 5}, "times": {"captured": "2024-03-04T10:00:00Z"}}', "null", "[]",
    "\x1b[2J\x1b]0;pwned\x07", "\x00\x01\x02", "\xff\xfe", "", "  \n ",
]
contents = st.one_of(st.sampled_from(CONTENTS), st.text(max_size=200),
                     st.lists(st.sampled_from(CONTENTS), max_size=4).map("\n".join))
payloads = st.one_of(contents.map(lambda t: t.encode("utf-8", "surrogatepass")),
                     st.binary(max_size=300), st.just(b"\x1f\x8b\x08\x00garbage"))


def check(ev: Evidence) -> None:
    assert isinstance(ev, Evidence)
    assert all(isinstance(n, str) for n in ev.notes)
    assert ev.node is None or isinstance(ev.node, str)
    for o in ev.observations:
        assert isinstance(o, Observation) and isinstance(o.status, Status)
        assert o.status not in (Status.ERROR, Status.SKIPPED)
        assert isinstance(o.summary, str)
        json.dumps(o.data, allow_nan=True, default=str)


@pytest.fixture()
def area(tmp_path: Path):
    """A scratch root for read_evidence (tempfile.tempdir), a victim directory beside it that
    nothing may touch, and a home for the inputs."""
    scratch, victim, inputs = tmp_path / "scratch", tmp_path / "victim", tmp_path / "in"
    for d in (scratch, victim, inputs):
        d.mkdir()
    saved = tempfile.tempdir
    tempfile.tempdir = str(scratch)
    try:
        yield scratch, victim, inputs
    finally:
        tempfile.tempdir = saved


def untouched(scratch: Path, victim: Path) -> None:
    assert list(victim.iterdir()) == [], "read_evidence wrote outside its scratch directory"
    assert list(scratch.iterdir()) == [], "read_evidence left its scratch directory behind"


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(FILE_NAMES), payloads), max_size=8))
def test_random_evidence_directories(area, files) -> None:
    scratch, victim, inputs = area
    d = Path(tempfile.mkdtemp(dir=inputs))
    try:
        for name, payload in files:
            (d / name).write_bytes(payload)
        check(read_evidence(d))
        for name, _ in files[:2]:
            if (d / name).read_bytes().startswith(b"\x1f\x8b"):
                continue  # a lone gzip file crashes: test_lone_file_that_is_broken_gzip
            check(read_evidence(d / name))  # a lone file
    finally:
        shutil.rmtree(d)
    untouched(scratch, victim)


MEMBER_NAMES = ["ev/kubelet.log", "ev/df.txt", "ev/manifest.json", "df-i.txt", "../x",
                "../../victim/x", "ev/../../x", "/etc/passwd", "/tmp/x", "//x", "./ev/lsmod.txt",
                "ev/./metrics", "..", ".", "", "ev", "ev/", "ev/sub/deep/openssl-dates.txt",
                "C:\\x", "C:/x", "..\\x", "ev\\..\\..\\x", "ev/link", "ev/link/escape.txt",
                "a" * 200 + "/node.json", "ev/\x1b[2J.txt", "ev/\u202e.txt"]
KINDS = ["file", "file", "file", "dir", "sym", "lnk", "chr", "blk", "fifo"]


@st.composite
def bundles(draw, victim: str) -> bytes:
    members = draw(st.lists(st.tuples(
        st.one_of(st.sampled_from(MEMBER_NAMES),
                  st.sampled_from(FILE_NAMES).map(lambda n: "ev/" + n),
                  st.just(victim + "/planted")),
        st.sampled_from(KINDS),
        st.sampled_from([victim, "../victim", "/", "ev", "ev/kubelet.log", "../" * 8, ""]),
        payloads), max_size=10))
    fmt = draw(st.sampled_from([tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT]))
    mode = draw(st.sampled_from(["w", "w:gz"]))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode, format=fmt) as tf:
        for name, kind, link, payload in members:
            ti = tarfile.TarInfo(name)
            ti.type = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE,
                       "lnk": tarfile.LNKTYPE, "chr": tarfile.CHRTYPE, "blk": tarfile.BLKTYPE,
                       "fifo": tarfile.FIFOTYPE}[kind]
            ti.linkname = link if kind in ("sym", "lnk") else ""
            ti.mode = draw(st.sampled_from([0o644, 0o4755, 0o000, 0o777]))
            ti.uid = 0
            try:
                if kind == "file":
                    ti.size = len(payload)
                    tf.addfile(ti, io.BytesIO(payload))
                else:
                    tf.addfile(ti)
            except ValueError:  # a name the format cannot hold
                continue
    data = buf.getvalue()
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]  # cut short
    return data


@FUZZ
@given(st.data(), st.sampled_from(["bundle.tar", "bundle.tar.gz", "x.tgz"]))
def test_random_bundles_stay_inside(area, data, name) -> None:
    scratch, victim, inputs = area
    bundle = inputs / name
    bundle.write_bytes(data.draw(bundles(str(victim))))
    try:
        ev = read_evidence(bundle)
        check(ev)
    finally:
        bundle.unlink()
    untouched(scratch, victim)
    assert sorted(p.name for p in inputs.iterdir()) == []


def test_links_and_escapes_are_refused(area) -> None:
    scratch, victim, inputs = area
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, kind, link in [("ev/up", tarfile.SYMTYPE, str(victim)),
                                 ("ev/up/x.txt", tarfile.REGTYPE, ""),
                                 ("ev/hard", tarfile.LNKTYPE, str(victim / "h")),
                                 ("../victim/y.txt", tarfile.REGTYPE, ""),
                                 (str(victim / "z.txt"), tarfile.REGTYPE, ""),
                                 ("ev/dev", tarfile.CHRTYPE, ""),
                                 ("ev/df.txt", tarfile.REGTYPE, "")]:
            ti = tarfile.TarInfo(name)
            ti.type, ti.linkname = kind, link
            body = CONTENTS[1].encode() if kind == tarfile.REGTYPE else b""
            ti.size = len(body)
            tf.addfile(ti, io.BytesIO(body))
    (inputs / "b.tar").write_bytes(buf.getvalue())
    ev = read_evidence(inputs / "b.tar")
    notes = "\n".join(ev.notes)
    for refused in ("ev/up", "ev/hard", "../victim/y.txt", "ev/dev"):
        assert f"refused member {refused!r}" in notes
    assert [o.probe for o in ev.observations] == ["node.df.space"]
    untouched(scratch, victim)


# -- known crashes -----------------------------------------------------------------------------
def _dir_with(inputs: Path, files: dict[str, str]) -> Path:
    d = Path(tempfile.mkdtemp(dir=inputs))
    for name, text in files.items():
        (d / name).write_text(text)
    return d


def test_deeply_nested_manifest(area) -> None:
    check(read_evidence(_dir_with(area[2], {"manifest.json": "[" * 100_000})))


def test_manifest_capture_time_out_of_range(area) -> None:
    ev = read_evidence(_dir_with(area[2], {"manifest.json": '{"captured": 1' + "0" * 400 + "}"}))
    check(ev)
    ev = read_evidence(_dir_with(area[2], {
        "manifest.json": '{"captured": 1e999}',
        "openssl-dates.txt": "notAfter=Jan  1 00:00:00 2030 GMT\n"}))
    assert ev.captured is None
    assert [o.probe for o in ev.observations] == ["node.cert.client"]


def test_bundle_member_with_nul(area) -> None:
    scratch, victim, inputs = area
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        ti = tarfile.TarInfo("ev/df.txt")
        ti.pax_headers = {"path": "ev/a\x00b"}
        ti.size = 1
        tf.addfile(ti, io.BytesIO(b"x"))
    (inputs / "nul.tar").write_bytes(buf.getvalue())
    check(read_evidence(inputs / "nul.tar"))
    untouched(scratch, victim)


def test_lone_file_that_is_broken_gzip(area) -> None:
    scratch, victim, inputs = area
    full = io.BytesIO()
    with tarfile.open(fileobj=full, mode="w:gz") as tf:
        ti = tarfile.TarInfo("ev/df.txt")
        ti.size = len(CONTENTS[1])
        tf.addfile(ti, io.BytesIO(CONTENTS[1].encode()))
    (inputs / "evidence").write_bytes(full.getvalue()[:40])
    check(read_evidence(inputs / "evidence"))
    (inputs / "kubelet.log").write_bytes(b"\x1f\x8b\x08\x00garbage")
    check(read_evidence(inputs / "kubelet.log"))
    untouched(scratch, victim)


def test_duplicate_member_loses_nothing_after_it(area) -> None:
    scratch, victim, inputs = area
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, body in [("ev/lsmod.txt", CONTENTS[3]), ("ev/lsmod.txt", CONTENTS[3]),
                           ("ev/df.txt", CONTENTS[1])]:
            ti = tarfile.TarInfo(name)
            ti.size = len(body.encode())
            tf.addfile(ti, io.BytesIO(body.encode()))
    (inputs / "dup.tar").write_bytes(buf.getvalue())
    ev = read_evidence(inputs / "dup.tar")
    assert sorted(o.probe for o in ev.observations) == ["node.df.space", "node.kmod"]
    untouched(scratch, victim)


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_evidence(tmp_path / "nope")
    assert os.path.exists(tmp_path)

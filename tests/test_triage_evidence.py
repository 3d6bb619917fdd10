"""Evidence bundles: redaction, atomic 0600 writes, verification, and captures from the lab."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import re
import stat
import subprocess
import sys
import tarfile
import time
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from conftest import ROOT, SCENARIO_NODES
from lab.scenarios import SCENARIOS
from triage.capture import GRACE, HANG_MARK, capture_node
from triage.evidence import MANIFEST, EvidenceError, default_dir, verify_bundle, write_bundle
from triage.redact import redact_bytes, redact_text

NOW = 1_795_000_000.0
HEALTHY = "node-0001"
SHELL_FILES = {"kubelet.log", "runtime.log", "dmesg.log", "crictl-ps.txt", "crictl-pods.txt",
               "crictl-info.json", "df-h.txt", "df-i.txt", "lsmod.txt", "openssl-dates.txt",
               "systemctl-status-kubelet.txt", "systemctl-status-containerd.txt",
               "ps-kubelet.txt", "clock.txt", "apiserver-from-node.txt"}
API_FILES = {"node.json", "events.json", "lease.json", "describe-node.txt"}
KUBELET_FILES = {"metrics.txt", "goroutines.txt"}


def members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:gz") as tf:
        return {m.name.split("/", 1)[1]: tf.extractfile(m).read()
                for m in tf if m.isfile()}


def small_bundle(tmp_path: Path, **kw) -> object:
    files = {"kubelet.log": "Nov 21 10:00:00 node-0001 kubelet[1]: I1121 started\n",
             "df-h.txt": b"Filesystem Size Used Avail Use% Mounted on\n/dev/x 10G 1G 9G 10% /\n"}
    return write_bundle(files, node="node-0001", captured_at=NOW, finished_at=NOW + 2,
                        out=kw.pop("out", tmp_path / "b.tar.gz"), tool_version="test", **kw)


# -- redaction -------------------------------------------------------------------------------------
def test_redacts_the_labs_kubeconfig_and_keeps_the_rest(served_lab):
    raw = served_lab.kubeconfig.read_bytes()
    conf = json.loads(raw)
    key_data = conf["users"][0]["user"]["client-key-data"]
    token = conf["users"][1]["user"]["token"]
    out, count = redact_bytes(raw)
    text = out.decode()
    assert key_data not in text and token not in text
    assert count == 2
    redacted = json.loads(out)  # still a kubeconfig a person can read
    assert redacted["users"][0]["user"]["client-key-data"] == "(redacted)"
    assert redacted["users"][1]["user"]["token"] == "(redacted)"
    # certificates are public and kept: they say who the user is and when it expires
    assert redacted["users"][0]["user"]["client-certificate-data"] == \
        conf["users"][0]["user"]["client-certificate-data"]
    assert redacted["clusters"] == conf["clusters"]
    # every line without a secret is kept byte for byte
    kept = [ln for ln in raw.decode().splitlines() if key_data not in ln and token not in ln]
    assert kept == [ln for ln in text.splitlines() if "(redacted)" not in ln]


def test_redacts_a_bearer_header_from_real_curl_output(served_lab):
    token = served_lab.info["admin_token"]
    r = subprocess.run(["curl", "-sv", "-k", "-o", "/dev/null", "-H",
                        f"Authorization: Bearer {token}",
                        f"{served_lab.info['api']}/api/v1/nodes/{HEALTHY}"],
                       capture_output=True, text=True, timeout=30)
    assert token in r.stderr and "< HTTP/1.1 200" in r.stderr
    out, count = redact_text(r.stderr)
    assert token not in out and count == 1
    assert "> Authorization: (redacted)" in out
    assert out.replace("> Authorization: (redacted)", "") == \
        r.stderr.replace(f"> Authorization: Bearer {token}", "")


@pytest.mark.parametrize("text, secret, expect", [
    ("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIF0fGaHbHY2XHbR/pE3Bu430nlqXez\n"
     "-----END EC PRIVATE KEY-----\n", "MHcCAQEEIF0fGaHbHY2XHbR",
     "-----BEGIN EC PRIVATE KEY-----\n(redacted)\n-----END EC PRIVATE KEY-----\n"),
    ("-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49\n-----END PRIVATE KEY-----",
     "MIGHAgEAMBMGByqGSM49", "-----BEGIN PRIVATE KEY-----\n(redacted)\n-----END PRIVATE KEY-----"),
    ("GET /api HTTP/1.1\r\nAuthorization: Basic YWRtaW46czNjcjN0\r\n", "YWRtaW46czNjcjN0",
     "GET /api HTTP/1.1\r\nAuthorization: (redacted)\r\n"),
    ('curl -H "Authorization: Bearer abc.def-ghi_jkl012345" https://x',
     "abc.def-ghi_jkl012345", 'curl -H "Authorization: (redacted)" https://x'),
    ("users:\n- name: u\n  user:\n    token: 0123456789abcdef0123\n    password: hunter2x\n",
     "hunter2x", "users:\n- name: u\n  user:\n    token: (redacted)\n    password: (redacted)\n"),
    ("    client-key-data: LS0tLS1CRUdJTiBFQyBQUklWQVRF\n"
     "    client-certificate-data: LS0tQ0VSVA==\n",
     "LS0tLS1CRUdJTiBFQyBQUklWQVRF",
     "    client-key-data: (redacted)\n    client-certificate-data: LS0tQ0VSVA==\n"),
    ("sa token eyJhbGciOiJSUzI1NiIsImtpZCI6IkFCQyJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ"
     "6a3ViZS1zeXN0ZW06ZGVmYXVsdCJ9.c2lnbmF0dXJlLWJ5dGVzLWhlcmU found",
     "eyJhbGciOiJSUzI1NiIsImtpZCI6IkFCQyJ9", "sa token (redacted) found"),
    ("/usr/bin/kubelet --token=s3cretT0kenValue --v=2", "s3cretT0kenValue",
     "/usr/bin/kubelet --token=(redacted) --v=2"),
    ("kubeadm join 10.0.0.1:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash "
     "sha256:1234", "abcdef.0123456789abcdef",
     "kubeadm join 10.0.0.1:6443 --token (redacted) --discovery-token-ca-cert-hash sha256:1234"),
    ('{"kind":"Secret","data":{"token":"ZXlKaGJHY2lPaUpTVXpJMU5pSXNJbXRw"}}',
     "ZXlKaGJHY2lPaUpTVXpJMU5pSXNJbXRw", '{"kind":"Secret","data":{"token":"(redacted)"}}'),
])
def test_each_kind_of_secret_is_redacted(text, secret, expect):
    out, count = redact_text(text)
    assert secret not in out
    assert out == expect
    assert count >= 1
    assert redact_text(out) == (out, 0)  # redacting twice changes nothing


def test_text_without_secrets_is_untouched():
    text = ('Nov 21 10:00:00 node-0001 kubelet[2033]: E1121 10:00:00.1 2033 authorization.go:1] '
            '"authorization: decision denied" err="x509: certificate has expired"\n'
            "-----BEGIN CERTIFICATE-----\nMIIBVDCB+6ADAgECAhQerYN5\n-----END CERTIFICATE-----\n"
            "    client-key: /var/lib/kubelet/pki/kubelet-client-current.pem\n"
            "token: \n")
    assert redact_text(text) == (text, 0)
    binary = bytes(range(256)) * 4
    assert redact_bytes(binary) == (binary, 0)


# -- writing and verifying -------------------------------------------------------------------------
def test_write_bundle_manifest_hashes_mode_and_verify(tmp_path):
    out = tmp_path / "deep" / "er" / "b.tar.gz"
    b = small_bundle(tmp_path, out=out, verdict={"verdict": "healthy"},
                     problems=["crictl-ps.txt: hung after 10 s"],
                     details={"df-h.txt": {"command": "df -h", "exit_status": 0}})
    assert b.path == out and b.node == "node-0001" and b.captured_at == NOW
    assert b.sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert stat.S_IMODE(out.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "deep").stat().st_mode) == 0o700
    assert sorted(os.listdir(out.parent)) == ["b.tar.gz"]  # no temp file left
    got = members(out)
    manifest = json.loads(got.pop(MANIFEST))
    assert set(got) == {"kubelet.log", "df-h.txt", "verdict.json"} == set(b.files)
    for name, data in got.items():
        assert manifest["files"][name]["sha256"] == hashlib.sha256(data).hexdigest() == \
            b.files[name]
        assert manifest["files"][name]["size"] == len(data)
    assert manifest["node"] == "node-0001" and manifest["tool_version"] == "test"
    assert manifest["times"]["started"] == NOW and manifest["times"]["finished"] == NOW + 2
    assert manifest["captured_by"]["host"]
    assert manifest["problems"] == b.problems == ["crictl-ps.txt: hung after 10 s"]
    assert manifest["files"]["df-h.txt"]["command"] == "df -h"
    assert json.loads(got["verdict.json"]) == {"verdict": "healthy"}
    again = verify_bundle(out, b.sha256)
    assert again.files == b.files and again.sha256 == b.sha256


def test_the_bundle_holds_redacted_text_and_counts_it(tmp_path, served_lab):
    token = served_lab.info["admin_token"]
    b = write_bundle({"kubeconfig.json": served_lab.kubeconfig.read_bytes(),
                      "curl.txt": f"> Authorization: Bearer {token}\n> Accept: */*\n"},
                     node="node-0001", captured_at=NOW, out=tmp_path / "r.tar.gz")
    raw = b.path.read_bytes()
    got = members(b.path)
    manifest = json.loads(got[MANIFEST])
    assert token.encode() not in got["curl.txt"] and b"(redacted)" in got["curl.txt"]
    assert got["curl.txt"].endswith(b"> Accept: */*\n")
    assert manifest["files"]["curl.txt"]["redactions"] == 1
    assert manifest["files"]["kubeconfig.json"]["redactions"] == 2
    assert served_lab.info["viewer_token"].encode() not in got["kubeconfig.json"]
    assert token.encode() not in raw


def test_default_dir_and_names(tmp_path, monkeypatch):
    monkeypatch.setenv("NODEWB_EVIDENCE_DIR", str(tmp_path / "ev"))
    assert default_dir() == tmp_path / "ev"
    monkeypatch.delenv("NODEWB_EVIDENCE_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_dir() == tmp_path / "xdg" / "nodewb" / "evidence"
    first = small_bundle(tmp_path, out=None)
    second = small_bundle(tmp_path, out=None)
    assert first.path.parent == second.path.parent == tmp_path / "xdg" / "nodewb" / "evidence"
    assert first.path.name == "node-0001-20261118T110640Z.tar.gz"
    assert second.path.name == "node-0001-20261118T110640Z-2.tar.gz"
    assert stat.S_IMODE(first.path.parent.stat().st_mode) == 0o700


def test_an_existing_file_is_never_overwritten(tmp_path):
    out = tmp_path / "b.tar.gz"
    out.write_bytes(b"earlier evidence")
    with pytest.raises(EvidenceError, match="already exists"):
        small_bundle(tmp_path, out=out)
    assert out.read_bytes() == b"earlier evidence"
    assert os.listdir(tmp_path) == ["b.tar.gz"]


def test_bad_input_is_a_clear_error(tmp_path):
    for files, words in (({"../x.log": "a"}, "not a file name"), ({"a/b.log": "a"}, "not a file"),
                         ({MANIFEST: "{}"}, "not a file name"), ({"x.log": 3}, "not text")):
        with pytest.raises(EvidenceError, match=words) as err:
            write_bundle(files, node="n", captured_at=NOW, out=tmp_path / "x.tar.gz")
        assert "\n" not in str(err.value)
    assert os.listdir(tmp_path) == []


FAIL_MIDWAY = """
import os, resource, signal, sys
from pathlib import Path
from triage.evidence import EvidenceError, write_bundle
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))
try:
    write_bundle({"kubelet.log": os.urandom(2 * 1024 * 1024), "dmesg.log": "x"}, node="n",
                 captured_at=1795000000.0, out=Path(sys.argv[1]) / "b.tar.gz")
except EvidenceError as exc:
    print("EvidenceError:", exc)
"""


def test_a_write_that_fails_midway_leaves_nothing(tmp_path):
    # the file size limit makes the write fail with EFBIG after 256 KiB of a ~2 MiB bundle
    out_dir = tmp_path / "ev"
    r = subprocess.run([sys.executable, "-c", FAIL_MIDWAY, str(out_dir)], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("EvidenceError:") and "could not be written" in r.stdout
    assert "File too large" in r.stdout
    assert os.listdir(out_dir) == []  # neither a partial bundle nor a temp file


def _retar(src: Path, dst: Path, change) -> None:
    with tarfile.open(src, "r:gz") as tf, tarfile.open(dst, "w:gz") as out:
        for m in tf:
            data = tf.extractfile(m).read() if m.isfile() else b""
            data = change(m, data)
            if data is None:
                continue
            m.size = len(data)
            out.addfile(m, io.BytesIO(data))


def test_a_tampered_bundle_fails_verification(tmp_path):
    b = small_bundle(tmp_path)
    raw = bytearray(b.path.read_bytes())
    # a member changed, the manifest left as it was
    forged = tmp_path / "forged.tar.gz"
    _retar(b.path, forged, lambda m, d: d.replace(b"started", b"STARTED")
           if m.name.endswith("kubelet.log") else d)
    with pytest.raises(EvidenceError, match="kubelet.log does not match its sha256"):
        verify_bundle(forged)
    # a file removed
    short = tmp_path / "short.tar.gz"
    _retar(b.path, short, lambda m, d: None if m.name.endswith("df-h.txt") else d)
    with pytest.raises(EvidenceError, match="df-h.txt is in the manifest but not in the bundle"):
        verify_bundle(short)
    # one byte of the file flipped: the whole-file hash no longer matches
    raw[len(raw) // 2] ^= 0xFF
    flipped = tmp_path / "flipped.tar.gz"
    flipped.write_bytes(bytes(raw))
    with pytest.raises(EvidenceError, match="the file changed"):
        verify_bundle(flipped, b.sha256)
    with pytest.raises(EvidenceError):
        verify_bundle(flipped)  # even without the hash: gzip's CRC or a member's sha256
    with pytest.raises(EvidenceError, match="not a readable bundle"):
        (tmp_path / "junk.tar.gz").write_bytes(b"not a bundle at all")
        verify_bundle(tmp_path / "junk.tar.gz")
    with pytest.raises(EvidenceError, match="no such file"):
        verify_bundle(tmp_path / "missing.tar.gz")


@pytest.mark.parametrize("kind, words", [
    ("dotdot", "'..' in the path"), ("absolute", "an absolute path"), ("symlink", "a link"),
    ("hardlink", "a link"), ("device", "a device or fifo"), ("fifo", "a device or fifo"),
    ("extra", "not listed in the manifest"),
])
def test_unsafe_or_extra_members_are_refused(tmp_path, kind, words):
    b = small_bundle(tmp_path)
    evil = tmp_path / f"{kind}.tar.gz"
    with tarfile.open(b.path, "r:gz") as tf, tarfile.open(evil, "w:gz") as out:
        top = tf.getmembers()[0].name.split("/")[0]
        for m in tf:
            out.addfile(m, tf.extractfile(m))
        info = tarfile.TarInfo({"dotdot": f"{top}/../../etc/cron.d/x",
                                "absolute": "/etc/cron.d/x"}.get(kind, f"{top}/x.log"))
        data = b"payload\n"
        if kind == "symlink":
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/shadow"
        elif kind == "hardlink":
            info.type, info.linkname = tarfile.LNKTYPE, f"{top}/kubelet.log"
        elif kind == "device":
            info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
        elif kind == "fifo":
            info.type = tarfile.FIFOTYPE
        if info.type == tarfile.REGTYPE:
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
        else:
            out.addfile(info)
    with pytest.raises(EvidenceError, match=words):
        verify_bundle(evil)
    assert not Path("/etc/cron.d/x").exists()


# -- captures from the lab -------------------------------------------------------------------------
@asynccontextmanager
async def clients(lab, with_ssh: bool = True):
    from probes.kube import Kube
    from probes.kubelet import KubeletClient
    from probes.node_checks import ssh_runner
    from probes.ssh import SshClient

    kube = Kube(str(lab.kubeconfig), None)
    ssh = SshClient(ssh_config=str(lab.ssh_config)) if with_ssh else None
    try:
        async with KubeletClient(kube, ssh_runner(ssh) if ssh else None) as kubelet:
            yield kube, ssh, kubelet
    finally:
        if ssh is not None:
            await ssh.close()


def capture(lab, node: str, out: Path, with_ssh: bool = True, **kw):
    async def run():
        async with clients(lab, with_ssh) as (kube, ssh, kubelet):
            t0 = time.monotonic()
            b = await capture_node(kube, ssh, kubelet, node, internal_ip=lab.info["ips"][node],
                                   out=out, **kw)
            return b, time.monotonic() - t0
    return asyncio.run(asyncio.wait_for(run(), 90))


def analyze(path: Path) -> tuple[str, list[str]]:
    from triage.evidence_read import read_evidence
    from triage.tree import Diagnosis

    ev = read_evidence(path)
    return Diagnosis(ev.node).extend(ev.observations).verdict().verdict, ev.notes


def test_capture_a_healthy_node(served_lab, tmp_path):
    verdict = {"node": HEALTHY, "verdict": "healthy", "domains": []}
    b, took = capture(served_lab, HEALTHY, tmp_path / "h.tar.gz", verdict=verdict)
    assert b.problems == []
    assert set(b.files) == SHELL_FILES | API_FILES | KUBELET_FILES | {"verdict.json"}
    assert stat.S_IMODE(b.path.stat().st_mode) == 0o600
    assert verify_bundle(b.path, b.sha256).files == b.files
    got = members(b.path)
    manifest = json.loads(got[MANIFEST])
    for name, sha in b.files.items():
        assert hashlib.sha256(got[name]).hexdigest() == sha == manifest["files"][name]["sha256"]
    assert manifest["files"]["crictl-ps.txt"]["command"].startswith("crictl --runtime-endpoint")
    assert manifest["files"]["crictl-ps.txt"]["exit_status"] == 0
    assert manifest["files"]["metrics.txt"]["source"] == "kubelet"
    assert manifest["times"]["started"] <= manifest["times"]["finished"]
    assert got["crictl-ps.txt"].startswith(b"CONTAINER")
    assert b"goroutine profile: total" in got["goroutines.txt"]
    assert json.loads(got["node.json"])["metadata"]["name"] == HEALTHY
    describe = got["describe-node.txt"].decode()
    assert describe.startswith(f"Name:               {HEALTHY}\n")
    for section in ("Conditions:", "System Info:", "Non-terminated Pods:", "Events:",
                    "Lease:"):
        assert section in describe
    assert json.loads(got["verdict.json"]) == verdict
    assert analyze(b.path)[0] == "healthy"
    assert took < 30


def test_capture_containerd_deadlock_records_the_hang_in_bounded_time(served_lab, tmp_path):
    node = SCENARIO_NODES["containerd-deadlock"]
    limit = 4.0  # a shorter limit than the default 10 s (the CLI test uses that one)
    b, took = capture(served_lab, node, tmp_path / "d.tar.gz", timeout=limit)
    hung = {p.split(":", 1)[0] for p in b.problems if "hung after" in p}
    assert {"crictl-ps.txt", "crictl-pods.txt"} <= hung
    got = members(b.path)
    manifest = json.loads(got[MANIFEST])
    for name in ("crictl-ps.txt", "crictl-pods.txt"):
        assert got[name].decode().startswith(HANG_MARK)
        assert f"did not finish in {limit:g} s" in got[name].decode()
        entry = manifest["files"][name]
        assert entry["timed_out"] is True and entry["exit_status"] is None
        assert limit - 1 <= entry["seconds"] <= limit + GRACE
    # the hang held up nothing else: the rest came back, and the capture ended soon after
    assert {"kubelet.log", "metrics.txt", "goroutines.txt", "df-h.txt", "node.json"} <= set(b.files)
    assert took < limit + GRACE + 15
    assert analyze(b.path)[0] == SCENARIOS["containerd-deadlock"].domain == "runtime_down"


@pytest.mark.parametrize("scenario", ["cert-expired", "disk-full"])
def test_capture_a_scenario_node_and_analyze_it(served_lab, tmp_path, scenario):
    node = SCENARIO_NODES[scenario]
    b, _ = capture(served_lab, node, tmp_path / f"{scenario}.tar.gz")
    assert b.problems == []
    verify_bundle(b.path, b.sha256)
    got = members(b.path)
    if scenario == "cert-expired":
        assert b"notAfter=" in got["openssl-dates.txt"]
    else:
        assert b"100%" in got["df-h.txt"]
    assert analyze(b.path)[0] == SCENARIOS[scenario].domain


def test_capture_without_ssh_uses_the_node_log_query(served_lab, tmp_path):
    b, _ = capture(served_lab, HEALTHY, tmp_path / "nossh.tar.gz", with_ssh=False)
    got = members(b.path)
    manifest = json.loads(got[MANIFEST])
    assert manifest["files"]["kubelet.log"]["source"] == "kubelet node log query"
    assert b"kubelet[" in got["kubelet.log"]
    missing = {p.split(":", 1)[0] for p in b.problems}
    assert missing == SHELL_FILES - {"kubelet.log", "runtime.log"}
    assert all("no SSH" in p for p in b.problems)
    assert {"metrics.txt", "node.json", "describe-node.txt"} <= set(b.files)


def test_ssh_that_cannot_connect_is_a_problem_not_a_failure(served_lab, tmp_path):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    config = served_lab.ssh_config.read_text().replace(
        f"Port {served_lab.info['bastion'][1]}\n", f"Port {closed}\n", 1)
    broken = tmp_path / "ssh_config"
    broken.write_text(config)

    async def run():
        from probes.kube import Kube
        from probes.kubelet import KubeletClient
        from probes.ssh import SshClient

        kube = Kube(str(served_lab.kubeconfig), None)
        ssh = SshClient(ssh_config=str(broken))
        try:
            async with KubeletClient(kube, None) as kubelet:
                return await capture_node(kube, ssh, kubelet, HEALTHY, out=tmp_path / "b.tar.gz",
                                          internal_ip=served_lab.info["ips"][HEALTHY])
        finally:
            await ssh.close()

    b = asyncio.run(asyncio.wait_for(run(), 90))
    failed = {p.split(":", 1)[0] for p in b.problems}
    assert failed == SHELL_FILES
    assert all("could not run it over SSH" in p for p in b.problems)
    assert set(b.files) == API_FILES | KUBELET_FILES
    verify_bundle(b.path, b.sha256)


def test_describe_node_is_plain_text_from_the_objects():
    from triage.describe import describe_node

    node = {"metadata": {"name": "node-0042", "labels": {"node-role.kubernetes.io/worker": ""},
                         "creationTimestamp": "2026-11-18T10:06:40Z"},
            "spec": {"taints": [{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]},
            "status": {"conditions": [{"type": "Ready", "status": "False",
                                       "reason": "KubeletNotReady",
                                       "message": "PLEG is not healthy\x1b[2J"}],
                       "nodeInfo": {"kubeletVersion": "v1.31.4"}}}
    pods = [{"metadata": {"namespace": "apps", "name": "web-1"},
             "status": {"phase": "Running", "containerStatuses": [{"ready": True,
                                                                    "restartCount": 2}]}},
            {"metadata": {"namespace": "apps", "name": "job-1"}, "status": {"phase": "Succeeded"}}]
    events = [{"type": "Warning", "reason": "NodeNotReady", "count": 3,
               "lastTimestamp": "2026-11-18T11:05:40Z", "source": {"component": "kubelet"},
               "message": "Node node-0042 status is now: NodeNotReady"}]
    text = describe_node(node, events=events, pods=pods, now=NOW)
    assert text.startswith("Name:               node-0042\nRoles:              worker\n")
    assert "Taints:             node.kubernetes.io/not-ready:NoSchedule\n" in text
    assert "CreationTimestamp:  2026-11-18 10:06:40 UTC (60m ago)\n" in text
    assert "PLEG is not healthy?[2J" in text and "\x1b" not in text
    assert "Non-terminated Pods:  (1 in total)" in text and "job-1" not in text
    assert re.search(r"^  apps +web-1 +Running +1/1 +2$", text, re.M)
    assert re.search(r"^  Warning +NodeNotReady +60s \(x3\) +kubelet +Node node-0042 status",
                     text, re.M)
    assert "Kubelet Version:            v1.31.4" in text

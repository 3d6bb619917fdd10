"""Captured evidence read back offline: triage.evidence_read and `nodewb analyze`."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from datetime import UTC
from pathlib import Path

import pytest

from probes.observation import Status
from tests.conftest import ROOT
from triage.capture import HANG_MARK, hang_note
from triage.evidence_read import guess_kind, observations_from, read_evidence
from triage.tree import Diagnosis

DATA = ROOT.parent / "shared" / "data"
METRICS = sorted((DATA / "kubelet-metrics").glob("*.txt"))
NODE_LIST = DATA / "node-objects" / "node_list_notready_kuberang_testdata.json"

HEAD = "Mar 12 10:11:12 ip-10-0-1-23 kubelet[1234]: "
KUBELET_OK = [
    'I0312 10:11:02.000001    1234 server.go:416] "Kubelet version" kubeletVersion="v1.28.3"',
    'I0312 10:11:03.114311    1234 kubelet_node_status.go:70] "Attempting to register node" '
    'node="ip-10-0-1-23"',
]
PLEG = ('E0312 10:11:12.123456    1234 kubelet.go:2412] "Skipping pod synchronization" '
        'err="PLEG is not healthy: pleg was last seen active 3m5.2s ago; threshold is 3m0s"')
CNI = ('E0312 10:11:12.123456    1234 kubelet.go:2855] "Container runtime network not ready" '
       'networkReady="NetworkReady=false reason:NetworkPluginNotReady message:Network plugin '
       'returns error: cni plugin not initialized"')
X509 = ('E0312 10:11:12.123456    1234 reflector.go:147] k8s.io/client-go/informers/factory.go:'
        '150: Failed to watch *v1.Node: failed to list *v1.Node: Get "https://10.0.0.10:6443/'
        'api/v1/nodes?limit=500": x509: certificate has expired or is not yet valid: current '
        'time 2024-03-12T10:11:12Z is after 2024-03-01T00:00:00Z')
SWAP = ('E0312 10:11:12.123456    1234 run.go:74] "command failed" err="failed to run Kubelet: '
        'running with swap on is not supported, please disable swap! or set --fail-swap-on '
        'flag to false. /proc/swaps contained: [Filename\\t\\t\\t\\tType\\t\\tSize\\t\\tUsed'
        '\\t\\tPriority /swap.img                               file\\t\\t4194300\\t\\t0\\t\\t-2]"')
CONTAINERD_DOWN = ('E0312 10:11:12.123456    1234 remote_runtime.go:193] "RunPodSandbox from '
                   'runtime service failed" err="rpc error: code = Unavailable desc = connection '
                   'error: desc = \\"transport: Error while dialing dial unix /run/containerd/'
                   'containerd.sock: connect: connection refused\\""')


def journal(*lines: str) -> str:
    return "".join(f"{HEAD}{ln}\n" for ln in (*KUBELET_OK, *lines))


def write(d: Path, files: dict[str, str | bytes]) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():
        (d / name).write_bytes(body if isinstance(body, bytes) else body.encode())
    return d


def verdict(path: Path):
    ev = read_evidence(path)
    return Diagnosis(ev.node).extend(ev.observations).verdict(), ev


def status_of(v, domain: str) -> str:
    return next(d["status"] for d in v.domains if d["id"] == domain)


@pytest.mark.parametrize("line,domain,expected", [
    (PLEG, "pleg_runtime_slow", "confirmed"),  # stale for longer than its threshold
    (PLEG.replace("pleg was last seen active 3m5.2s ago; threshold is 3m0s",
                  "pleg has yet to be successful"), "pleg_runtime_slow", "suspected"),
    (CNI, "cni_network", "confirmed"),
    (X509, "cert_expired", "confirmed"),
    (SWAP, "kubelet_config", "confirmed"),
    (CONTAINERD_DOWN, "runtime_down", "confirmed"),
])
def test_kubelet_journal_lines_name_their_domain(tmp_path, line, domain, expected):
    d = write(tmp_path / "ev", {"kubelet.log": journal(line),
                                "manifest.json": json.dumps({"node": "ip-10-0-1-23"})})
    v, ev = verdict(d)
    assert v.node == "ip-10-0-1-23"
    assert status_of(v, domain) == expected, v.to_json()
    if expected == "confirmed":
        assert v.verdict == domain
    else:
        assert v.verdict == "unknown"  # a symptom alone is not a finding
    obs = ev.observations[0]
    assert obs.probe == "node.journal.kubelet" and obs.via == "evidence"
    assert obs.data["file"] == "kubelet.log" and obs.status is Status.BAD
    chosen = next(x for x in v.domains if x["id"] == domain)
    assert any(line[:40] in e for e in chosen["evidence"])


def test_single_log_dir_and_lone_file_agree(tmp_path):
    d = write(tmp_path / "only", {"kubelet.log": journal(SWAP)})
    lone = write(tmp_path / "lone", {"captured-from-node7": journal(SWAP)}) / "captured-from-node7"
    for path in (d, lone):
        v, ev = verdict(path)
        assert v.verdict == "kubelet_config", path
        assert [o.probe for o in ev.observations] == ["node.journal.kubelet"]
        assert v.node is None


def test_lone_files_are_guessed_by_content(tmp_path):
    dmesg = ("[Tue Mar 12 10:11:12 2024] Out of memory: Killed process 1234 (kubelet) "
             "total-vm:2345672kB, anon-rss:1048576kB, file-rss:0kB, shmem-rss:0kB, UID:0 "
             "pgtables:4096kB oom_score_adj:-999\n")
    df_i = ("Filesystem      Inodes   IUsed  IFree IUse% Mounted on\n"
            "/dev/nvme0n1p1 6553600 6553598      2  100% /\n")
    runtime = ('Mar 12 10:11:12 ip-10-0-1-23 containerd[812]: time="2024-03-12T10:11:12.1Z" '
               'level=error msg="failed to reload cni configuration after receiving fs change '
               'event" error="cni config load failed: no network config found in /etc/cni/'
               'net.d: cni plugin not initialized: failed to load cni config"\n')
    cases = {"a": (dmesg, "node.dmesg.oom", "memory_pid_pressure"),
             "b": (df_i, "node.df.inodes", "disk_pressure"),
             "c": (runtime, "node.journal.containerd", "cni_network")}
    for name, (body, probe, domain) in cases.items():
        f = tmp_path / name
        f.write_text(body)
        v, ev = verdict(f)
        assert [o.probe for o in ev.observations] == [probe], ev.notes
        assert v.verdict == domain, v.to_json()


def test_named_command_outputs(tmp_path):
    d = write(tmp_path / "ev", {
        "df-h.txt": "Filesystem      Size  Used Avail Use% Mounted on\n"
                    "/dev/nvme0n1p1   80G   40G   40G  50% /\n",
        "df-i.txt": "Filesystem      Inodes   IUsed  IFree IUse% Mounted on\n"
                    "/dev/nvme0n1p1 5242880 5190000  52880   99% /\n",
        "lsmod.txt": "Module                  Size  Used by\noverlay               151552  12\n"
                     "br_netfilter           32768  0\n",
        "crictl-ps.txt": "CONTAINER           IMAGE               CREATED             STATE"
                         "               NAME                ATTEMPT             POD ID\n"
                         "1f73f2d81bf98       ead0a4a53df89       2 hours ago         Running"
                         "             coredns             0                   a5d1ecfc0d6e4\n",
        "openssl-dates.txt": "notBefore=Mar  1 00:00:00 2023 GMT\n"
                             "notAfter=Mar  1 00:00:00 2024 GMT\n",
    })
    v, ev = verdict(d)
    probes = {o.probe: o for o in ev.observations}
    assert set(probes) == {"node.df.space", "node.df.inodes", "node.kmod", "node.crictl.ps",
                           "node.cert.client"}, ev.notes
    assert probes["node.df.space"].status is Status.OK
    assert probes["node.df.inodes"].status is Status.BAD
    assert probes["node.kmod"].data["missing"] == ["vxlan"]
    assert probes["node.crictl.ps"].data["count"] == 1
    assert probes["node.cert.client"].data["state"] == "expired"
    assert all(o.via == "evidence" and o.data["file"] for o in ev.observations)
    assert status_of(v, "disk_pressure") == "confirmed"
    assert status_of(v, "cni_network") == "confirmed"
    assert status_of(v, "cert_expired") == "confirmed"
    assert v.verdict == "cert_expired"  # PRECEDENCE: the certificate comes before CNI and disk


@pytest.mark.parametrize("scrape", METRICS, ids=lambda p: p.name)
def test_real_healthy_metrics_scrape_decides_no_bad_domain(tmp_path, scrape):
    d = write(tmp_path / "ev", {"metrics.txt": scrape.read_bytes()})
    v, ev = verdict(d)
    assert [o.probe for o in ev.observations] == ["kubelet.metrics"], ev.notes
    assert ev.observations[0].data["single_scrape"] is True
    assert not [x for x in v.domains if x["status"] in ("confirmed", "suspected")], v.to_json()
    assert v.verdict != "unknown" or v.node is None  # no node.json: it cannot say healthy
    assert v.verdict in ("unknown", "healthy")
    # and a lone metrics file is recognised by its content
    lone = tmp_path / "scrape"
    lone.write_bytes(scrape.read_bytes())
    assert [o.probe for o in observations_from(lone)] == ["kubelet.metrics"]


def test_real_node_object_decides_nothing_specific(tmp_path):
    item = json.loads(NODE_LIST.read_text())["items"][0]
    d = write(tmp_path / "ev", {"node.json": json.dumps(item)})
    v, ev = verdict(d)
    assert v.node == item["metadata"]["name"]
    assert [o.probe for o in ev.observations] == ["api.node"]
    assert ev.observations[0].data["ready"] == "False"
    assert v.verdict == "unknown"
    assert not [x for x in v.domains if x["status"] == "confirmed"]
    assert v.next_probes  # it says what to look at next
    # the whole list of four is ambiguous: skipped with a note, not a guess
    ev2 = read_evidence(NODE_LIST)
    assert ev2.observations == [] and any("NodeList of 4" in n for n in ev2.notes), ev2.notes


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for info, body in members:
            if body is not None:
                info.size = len(body)
                tf.addfile(info, io.BytesIO(body))
            else:
                tf.addfile(info)
    return path


def test_bundle_refuses_escapes_and_links(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    outside = tmp_path / "escaped.txt"
    evil = tarfile.TarInfo("bundle/../../escaped.txt")
    absolute = tarfile.TarInfo(str(tmp_path / "absolute.txt"))
    link = tarfile.TarInfo("bundle/kubelet-link.log")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    hard = tarfile.TarInfo("bundle/hard.log")
    hard.type, hard.linkname = tarfile.LNKTYPE, "bundle/kubelet.log"
    dev = tarfile.TarInfo("bundle/null")
    dev.type = tarfile.CHRTYPE
    good = tarfile.TarInfo("bundle/kubelet.log")
    manifest = tarfile.TarInfo("bundle/manifest.json")
    bundle = _tar(work / "evidence.tar.gz", [
        (evil, b"owned\n"), (absolute, b"owned\n"), (link, None), (hard, None), (dev, None),
        (good, journal(CNI).encode()), (manifest, json.dumps({"node": "node-0007"}).encode()),
    ])
    v, ev = verdict(bundle)
    assert not outside.exists() and not (tmp_path / "absolute.txt").exists()
    assert sorted(p.name for p in work.iterdir()) == ["evidence.tar.gz"]
    refused = [n for n in ev.notes if "refused member" in n]
    assert len(refused) == 5, ev.notes
    assert v.node == "node-0007" and v.verdict == "cni_network"


def test_garbage_is_skipped_with_a_note(tmp_path):
    d = write(tmp_path / "ev", {
        "kubelet.log": journal(PLEG),
        "random.bin": bytes(range(256)) * 40,
        "notes.txt": "lunch at noon\n",
        "metrics.txt": "this is { not metrics\n\x01\x02",
        "node.json": "{not json",
        "df-i.txt": "no filesystems here\n",
        "lsmod.txt": "nothing\n",
        "empty.log": "",
        "describe-node.txt": "Name: node-0001\n",
    })
    (d / "sub").mkdir()
    (d / "dangling.log").symlink_to(tmp_path / "nowhere")
    v, ev = verdict(d)
    assert [o.probe for o in ev.observations] == ["node.journal.kubelet"]
    for name in ("random.bin", "notes.txt", "metrics.txt", "node.json", "df-i.txt",
                 "lsmod.txt", "empty.log", "describe-node.txt", "dangling.log", "sub/"):
        assert any(n.startswith(name) for n in ev.notes), (name, ev.notes)
    assert status_of(v, "pleg_runtime_slow") == "confirmed"


def test_guess_kind_by_name_first():
    assert guess_kind("runtime.log", "anything") == "runtime-journal"
    assert guess_kind("dmesg.log", "") == "dmesg"
    assert guess_kind("df-i.txt", "") == "df-inodes"
    assert guess_kind("mystery", "hello") is None


def analyze(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tui.cli", "analyze", *args],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_cli_json(tmp_path):
    d = write(tmp_path / "ev", {"kubelet.log": journal(X509),
                                "manifest.json": json.dumps({"node": "node-0003"})})
    r = analyze(str(d), "--format", "json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert list(out)[:8] == ["node", "verdict", "domains", "next_probes", "fix", "verify",
                             "dont", "actions"]
    assert out["node"] == "node-0003" and out["verdict"] == "cert_expired"
    assert out["fix"] and out["actions"] == ["approve-csr"]
    for fmt in ("text", "markdown"):
        r = analyze(str(d), "--format", fmt)
        assert r.returncode == 0 and "cert_expired" in r.stdout, r.stderr


def test_cli_node_null_and_missing_path(tmp_path):
    lone = tmp_path / "kubelet.log"
    lone.write_text(journal(PLEG))
    r = analyze(str(lone), "--format", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["node"] is None
    r = analyze(str(tmp_path / "nope"), "--format", "json")
    assert r.returncode == 1 and r.stdout == ""
    assert "nope" in r.stderr and "no such file" in r.stderr.lower()


def test_relist_age_is_judged_at_capture_time(tmp_path):
    scrape = DATA / "kubelet-metrics" / "datadog_kubelet_metrics_1_21.txt"
    seen = 1.648119277e+09  # kubelet_pleg_last_seen_seconds in that scrape
    for captured, expected in ((seen + 5, "ruled_out"), (seen + 600, "confirmed")):
        d = write(tmp_path / str(captured), {
            "metrics.txt": scrape.read_bytes(),
            "manifest.json": json.dumps({"node": "n1", "times": {"captured": captured}})})
        v, ev = verdict(d)
        assert status_of(v, "pleg_runtime_slow") == expected, v.to_json()


def test_cert_dates_judged_at_capture_time(tmp_path):
    dates = "notBefore=Mar  1 00:00:00 2023 GMT\nnotAfter=Mar  1 00:00:00 2024 GMT\n"
    for captured, state in (("2023-06-01T00:00:00Z", "valid"), ("2024-06-01T00:00:00Z",
                                                                  "expired")):
        d = write(tmp_path / captured[:4], {
            "openssl-dates.txt": dates,
            "manifest.json": json.dumps({"node": "n1", "times": {"captured": captured}})})
        obs = observations_from(d)
        assert [o.data.get("state") for o in obs] == [state]


CORPUS = Path(__file__).resolve().parent / "corpus"


def test_describe_node_and_events_are_read_by_content_too(tmp_path):
    described = (CORPUS / "pleg_runtime_slow" / "jupyter-et-13-describe-node" /
                 "describe-node.txt").read_text()
    events = (CORPUS / "memory_pid_pressure" / "k3s-838-system-oom-events" /
              "events.txt").read_text()
    assert guess_kind("node-status.txt", "Conditions:\n" + described) == "describe-node"
    assert guess_kind("what-kubectl-said.txt", events) == "events-text"
    d = write(tmp_path / "ev", {"describe-node.txt": described, "events.txt": events})
    v, ev = verdict(d)
    assert v.node == "etkhub"
    assert {o.probe for o in ev.observations} == {"api.node", "api.events"}
    node = next(o for o in ev.observations if o.probe == "api.node")
    assert node.data["ready"] == "False" and node.data["set_by"] == "kubelet"
    assert "PLEG is not healthy" in node.data["message"]
    # both confirmed; memory starvation comes first and explains the stale relist
    assert v.verdict == "memory_pid_pressure"
    assert status_of(v, "pleg_runtime_slow") == "confirmed"


def test_describe_node_without_a_ready_row_does_not_invent_one(tmp_path):
    text = (CORPUS / "disk_pressure" / "k8s-93711-describe-node" / "describe-node.txt").read_text()
    d = write(tmp_path / "ev", {"describe-node.txt": text})
    v, ev = verdict(d)
    assert ev.observations[0].data["ready"] is None
    assert v.verdict == "disk_pressure"
    disk = next(x for x in v.domains if x["id"] == "disk_pressure")
    assert "KubeletHasDiskPressure" in disk["evidence"][0]


def test_capture_bundle_names_are_read(tmp_path):
    # the file names and command outputs `nodewb capture` writes (triage/capture.py)
    d = write(tmp_path / "ev", {
        "manifest.json": json.dumps({"node": "node-0013", "times": {"captured": 1.7e9}}),
        "systemctl-status-containerd.txt":
            "ActiveState=failed\nSubState=failed\nNRestarts=5\nMainPID=0\nResult=core-dump\n"
            "##nodewb## status\n× containerd.service - containerd container runtime\n",
        "clock.txt": "1700000000\nno\n##nodewb## status\nSystem clock synchronized: no\n",
        "events.json": json.dumps({"kind": "EventList", "items": [
            {"type": "Warning", "reason": "SystemOOM", "message": "System OOM encountered, "
             "victim process: kubelet, pid: 2211", "source": {"component": "kubelet"},
             "lastTimestamp": "2023-11-14T22:13:20Z"}]}),
    })
    v, ev = verdict(d)
    probes = {o.probe: o for o in ev.observations}
    assert set(probes) == {"node.systemd.containerd", "node.ntp", "api.events"}, ev.notes
    assert probes["node.systemd.containerd"].data["active_state"] == "failed"
    assert probes["node.ntp"].data["ntp_synchronized"] is False
    assert status_of(v, "runtime_down") == "confirmed"
    assert status_of(v, "memory_pid_pressure") == "confirmed"
    assert status_of(v, "clock_skew") == "suspected"


# -- bundles as `nodewb capture` writes them: manifest entries replayed with their files ----------
T0 = 1.7e9  # the capture's start
CRICTL = "crictl --runtime-endpoint unix:///run/containerd/containerd.sock ps"


def bundle(d: Path, files: dict[str, tuple[str, dict]], *, finished: float = T0 + 12,
           node: str = "node-0004") -> Path:
    """A directory laid out like an unpacked capture: each file with its manifest entry."""
    entries = {name: {"sha256": "-", "size": len(body), **entry}
               for name, (body, entry) in files.items()}
    manifest = {"format": "nodewb-evidence/1", "node": node,
                "times": {"started": T0, "finished": finished}, "files": entries}
    return write(d, {"manifest.json": json.dumps(manifest),
                     **{name: body for name, (body, _) in files.items()}})


def ran(command: str, started: float = T0, seconds: float = 0.05, exit_status: int | None = 0,
        timed_out: bool = False) -> dict:
    return {"source": "ssh", "command": command, "started": started, "exit_status": exit_status,
            "timed_out": timed_out, "seconds": seconds}


def by_probe(ev) -> dict:
    return {o.probe: o for o in ev.observations}


def test_manifest_entries_are_kept(tmp_path):
    d = bundle(tmp_path / "b", {"crictl-ps.txt": ("CONTAINER IMAGE\n", ran(CRICTL))})
    ev = read_evidence(d)
    assert ev.entries["crictl-ps.txt"]["command"] == CRICTL
    assert ev.captured == T0 + 12
    assert by_probe(ev)["node.crictl.ps"].started == T0


def test_a_timed_out_crictl_is_a_hang_of_the_runtime(tmp_path):
    note = hang_note(CRICTL, 10, 0)
    d = bundle(tmp_path / "b", {
        "crictl-ps.txt": (note, ran(CRICTL, seconds=10.008, exit_status=None, timed_out=True))})
    v, ev = verdict(d)
    ps = by_probe(ev)["node.crictl.ps"]
    assert ps.status is Status.HUNG and ps.duration == 10.008
    assert ps.summary.startswith(HANG_MARK) and ps.summary.endswith("[crictl-ps.txt]")
    assert status_of(v, "runtime_down") == "confirmed"
    down = next(x for x in v.domains if x["id"] == "runtime_down")
    assert any(e.startswith("node.crictl.ps [hung]: " + HANG_MARK) for e in down["evidence"])
    assert v.verdict == "runtime_down"
    # the mark alone (a manifest without entries, a file cut out of a bundle) says the same
    lone = write(tmp_path / "lone", {"crictl-ps.txt": note + "partial output\n"})
    ps = by_probe(read_evidence(lone))["node.crictl.ps"]
    assert ps.status is Status.HUNG and ps.raw == "partial output"


def test_a_failing_crictl_is_judged_by_its_exit_status(tmp_path):
    fata = ('time="2026-11-21T10:35:00Z" level=fatal msg="validate service connection: '
            'validate CRI v1 runtime API for endpoint \\"unix:///run/containerd/containerd.sock'
            '\\": rpc error: code = Unavailable desc = connection error: desc = \\"transport: '
            'Error while dialing: dial unix /run/containerd/containerd.sock: connect: no such '
            'file or directory\\""\n')
    d = bundle(tmp_path / "b", {"crictl-ps.txt": (fata, ran(CRICTL, seconds=0.2,
                                                            exit_status=1))})
    v, ev = verdict(d)
    ps = by_probe(ev)["node.crictl.ps"]
    assert ps.status is Status.BAD and ps.data["socket_error"] is True, ps
    assert "the runtime socket does not answer" in ps.summary
    assert status_of(v, "runtime_down") == "confirmed"
    # without its exit status the same text is not a crictl table: skipped with a note
    ev = read_evidence(write(tmp_path / "plain", {"crictl-ps.txt": fata}))
    assert ev.observations == [] and ev.notes[0].startswith("crictl-ps.txt: skipped")


CLOCK = ("{now}\nNTPSynchronized=yes\n##nodewb## status\n"
         "System clock synchronized: yes\n              NTP service: active\n")


def test_clock_offset_is_judged_when_the_command_ran(tmp_path):
    # clock.txt ran 0.7 s into a capture that finished 12 s later (a hung crictl held it up)
    cmd = "date -u +%s; timedatectl show -p NTPSynchronized --value"
    d = bundle(tmp_path / "ok", {"clock.txt": (CLOCK.format(now=int(T0 + 0.7)),
                                               ran(cmd, started=T0 + 0.7, seconds=0.02))})
    ntp = by_probe(read_evidence(d))["node.ntp"]
    assert ntp.status is Status.OK and abs(ntp.data["offset_seconds"]) <= 1, ntp
    d = bundle(tmp_path / "skew", {"clock.txt": (CLOCK.format(now=int(T0 + 300)),
                                                 ran(cmd, started=T0 + 0.7, seconds=0.02))})
    v, ev = verdict(d)
    ntp = by_probe(ev)["node.ntp"]
    assert ntp.status is Status.BAD and 298 <= ntp.data["offset_seconds"] <= 301
    assert status_of(v, "clock_skew") == "confirmed"


APISERVER_CMD = "s=$(grep -E '^[[:space:]]*server:' /etc/kubernetes/kubelet.conf ...); curl ..."


def test_apiserver_from_node(tmp_path):
    d = bundle(tmp_path / "ok", {"apiserver-from-node.txt": (
        "server: https://10.0.0.10:6443\n200\n", ran(APISERVER_CMD))})
    v, ev = verdict(d)
    api = by_probe(ev)["node.apiserver"]
    assert api.status is Status.OK and api.data["http_code"] == 200
    assert api.data["server"] == "https://10.0.0.10:6443"
    assert status_of(v, "apiserver_unreachable") == "ruled_out"
    d = bundle(tmp_path / "cut", {"apiserver-from-node.txt": (
        "server: https://10.0.0.10:6443\n000\n", ran(APISERVER_CMD, seconds=5.0,
                                                     exit_status=28))})
    v, ev = verdict(d)
    api = by_probe(ev)["node.apiserver"]
    assert api.status is Status.BAD and "no answer in 5 s" in api.summary
    assert status_of(v, "apiserver_unreachable") == "confirmed"
    assert guess_kind("from-the-node.txt", "server: https://10.0.0.10:6443\n403\n") == \
        "apiserver-from-node"
    # no server: line in the kubelet's kubeconfig: nothing to judge
    d = bundle(tmp_path / "none", {"apiserver-from-node.txt": ("server: \n000\n",
                                                               ran(APISERVER_CMD))})
    ev = read_evidence(d)
    assert ev.observations == [] and "no server: line" in ev.notes[0]


def lease(renew: str, name: str = "node-0004") -> str:
    return json.dumps({"kind": "Lease", "metadata": {"name": name,
                                                     "namespace": "kube-node-lease"},
                       "spec": {"holderIdentity": name, "leaseDurationSeconds": 40,
                                "renewTime": renew}})


def iso(ts: float) -> str:
    from datetime import datetime
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_lease_is_judged_at_capture_time(tmp_path):
    api = {"source": "apiserver", "started": T0, "seconds": 0.2}
    d = bundle(tmp_path / "fresh", {"lease.json": (lease(iso(T0 - 8)), api)})
    got = by_probe(read_evidence(d))["api.lease"]
    assert got.status is Status.OK and 8 <= got.data["renew_age"] <= 8.5, got
    d = bundle(tmp_path / "stale", {"lease.json": (lease(iso(T0 - 600)), api)})
    v, ev = verdict(d)
    got = by_probe(ev)["api.lease"]
    assert got.status is Status.BAD and "600 s before capture" in got.summary
    assert status_of(v, "apiserver_unreachable") == "suspected"
    # without a capture time the age is not known: a note, not a guess
    ev = read_evidence(write(tmp_path / "bare", {"lease.json": lease(iso(T0))}))
    assert ev.observations == [] and "capture time is unknown" in ev.notes[0]
    assert guess_kind("x.json", lease(iso(T0))) == "lease"


SHOW = ("ActiveState={a}\nSubState={s}\nNRestarts={n}\nMainPID=891\n"
        "ExecMainStartTimestamp=Sat 2026-11-21 10:24:33 UTC\nResult={r}\n")
STATUS = ("##nodewb## status\n● kubelet.service - kubelet: The Kubernetes Node Agent\n"
          "     Loaded: loaded (/lib/systemd/system/kubelet.service; enabled)\n"
          "    Process: 88 ExecStartPre=/bin/sh -c mkdir -p /run/containerd (code=exited)\n"
          'Nov 21 10:24:33 node-0004 kubelet[891]: E1121 remote_runtime.go:193] err="rpc error:'
          ' containerd.sock: connect: connection refused"\n')


@pytest.mark.parametrize("unit", ["kubelet", "containerd"])
def test_systemctl_status_files_by_name(tmp_path, unit):
    name = f"systemctl-status-{unit}.txt"
    # the status part names the other unit: the file name decides, not the content
    assert guess_kind(name, SHOW + STATUS) == f"systemd-{unit}"
    text = SHOW.format(a="activating", s="auto-restart", n=7, r="exit-code") + STATUS
    d = bundle(tmp_path / "b", {name: (text, ran("systemctl show ...; systemctl status ..."))})
    ev = read_evidence(d)
    got = by_probe(ev)[f"node.systemd.{unit}"]
    assert got.status is Status.BAD and got.data["restarts"] == 7
    assert got.data["properties"].keys() == {"ActiveState", "SubState", "NRestarts", "MainPID",
                                             "ExecMainStartTimestamp", "Result"}
    assert "Loaded: loaded" in got.raw  # the status part is kept for a person
    ok = SHOW.format(a="active", s="running", n=0, r="success") + STATUS
    d = bundle(tmp_path / "ok", {name: (ok, ran("systemctl show ..."))})
    assert by_probe(read_evidence(d))[f"node.systemd.{unit}"].status is Status.OK


def _described(events: list[dict]) -> str:
    from triage.describe import describe_node
    node = {"kind": "Node", "metadata": {"name": "node-0013"}, "status": {"conditions": [
        {"type": "MemoryPressure", "status": "True", "reason": "KubeletHasInsufficientMemory",
         "message": "kubelet has insufficient memory available",
         "lastHeartbeatTime": iso(T0 - 5), "lastTransitionTime": iso(T0 - 300)},
        {"type": "Ready", "status": "True", "reason": "KubeletReady",
         "message": "kubelet is posting ready status", "lastHeartbeatTime": iso(T0 - 5),
         "lastTransitionTime": iso(T0 - 9000)}]}}
    return describe_node(node, events=events, now=T0)


OOM_EVENT = {"type": "Warning", "reason": "SystemOOM", "count": 3,
             "message": "System OOM encountered, victim process: kubelet, pid: 2211",
             "source": {"component": "kubelet"}, "lastTimestamp": "2023-11-14T22:13:20Z"}


def test_describe_node_events_section(tmp_path):
    built = {"source": "apiserver", "built_from": "node, lease, events, pods"}
    d = bundle(tmp_path / "b", {"describe-node.txt": (_described([OOM_EVENT]), built)},
               node="node-0013")
    v, ev = verdict(d)
    got = by_probe(ev)
    assert set(got) == {"api.node", "api.events"}
    assert got["api.events"].status is Status.BAD
    assert got["api.events"].data["warning_reasons"] == {"SystemOOM": 1}
    assert got["api.node"].data["heartbeat_age"] is not None
    assert status_of(v, "memory_pid_pressure") == "confirmed"
    # with events.json in the bundle, that is what counts, quietly
    d = bundle(tmp_path / "both", {
        "describe-node.txt": (_described([OOM_EVENT]), built),
        "events.json": (json.dumps({"kind": "EventList", "items": []}), built)},
        node="node-0013")
    ev = read_evidence(d)
    events = [o for o in ev.observations if o.probe == "api.events"]
    assert len(events) == 1 and events[0].data["file"] == "events.json"
    assert events[0].status is Status.OK and events[0].data["total"] == 0
    assert not any("also read from" in n for n in ev.notes), ev.notes
    # no events: no api.events from the describe printout
    d = bundle(tmp_path / "none", {"describe-node.txt": (_described([]), built)},
               node="node-0013")
    assert {o.probe for o in read_evidence(d).observations} == {"api.node"}


def test_a_command_that_printed_nothing_is_still_judged(tmp_path):
    # `ps -C kubelet` with no kubelet prints nothing and exits 1
    d = bundle(tmp_path / "b", {"ps-kubelet.txt": ("", ran("ps -o rss=,pcpu= -C kubelet",
                                                           exit_status=1))})
    got = by_probe(read_evidence(d))["node.kubelet.process"]
    assert got.status is Status.BAD and got.data["running"] is False
    ev = read_evidence(write(tmp_path / "plain", {"ps-kubelet.txt": ""}))
    assert ev.observations == [] and ev.notes == ["ps-kubelet.txt: skipped (empty)"]


def test_a_lease_the_api_server_did_not_have_is_evidence(tmp_path):
    """capture keeps the API's 404 for the lease as a Status object: analyze reads it as live
    does (the kubelet has never renewed a lease), not as a missing file."""
    import json as _json

    from triage.evidence_read import read_evidence

    (tmp_path / "lease.json").write_text(_json.dumps(
        {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
         "code": 404, "message": 'leases.coordination.k8s.io "node-0009" not found'}))
    (tmp_path / "manifest.json").write_text(_json.dumps({"node": "node-0009",
                                                          "captured": 1795000000.0}))
    ev = read_evidence(tmp_path)
    (lease,) = [o for o in ev.observations if o.probe == "api.lease"]
    assert lease.status.value == "bad" and "never renewed" in lease.summary

"""The lab's fault injection: spec parsing, the /lab/v1/faults endpoint (admin only, bounded in
time), and each API and SSH fault seen from real kubectl and OpenSSH."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from lab.faults import FaultError, garble_metrics, hostile_messages, parse_fault


def faults(lab, method: str = "GET", body: dict | None = None, context: str | None = None,
           check: bool = True) -> dict:
    """Drive /lab/v1/faults with kubectl: GET lists, POST adds, DELETE clears."""
    verb = {"GET": "get", "POST": "create", "DELETE": "delete"}[method]
    cmd = ["kubectl", "--kubeconfig", str(lab.kubeconfig)]
    if context:
        cmd += ["--context", context]
    cmd += [verb, "--raw", "/lab/v1/faults"]
    if body is not None:
        cmd += ["-f", "-"]
    result = subprocess.run(cmd, input=json.dumps(body) if body is not None else None,
                            capture_output=True, text=True, timeout=30)
    if not check and result.returncode != 0:
        return {"returncode": result.returncode, "stderr": result.stderr}
    assert result.returncode == 0, f"{method} /lab/v1/faults: {result.stderr}"
    return json.loads(result.stdout)


def inject(lab, spec: str) -> dict:
    """Add one fault; returns its description (with `begins` and `ends`, epoch seconds)."""
    return faults(lab, "POST", {"spec": spec})["fault"]


def control(lab, action: str, body: dict) -> dict:
    result = subprocess.run(["kubectl", "--kubeconfig", str(lab.kubeconfig), "create", "--raw",
                             f"/lab/v1/{action}", "-f", "-"], input=json.dumps(body),
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, f"/lab/v1/{action}: {result.stderr}"
    return json.loads(result.stdout)


def until(check, timeout: float, why: str, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {why}")
        time.sleep(step)


# -- parsing -------------------------------------------------------------------------------------

def test_parse_fault_reads_every_kind_and_defaults():
    f = parse_fault("api-down:for=10,after=5")
    assert (f.kind, f.duration, f.after) == ("api-down", 10.0, 5.0)
    f = parse_fault("api-5xx")
    assert f["rate"] == 0.5 and f["code"] == 503 and f.duration == 30.0
    f = parse_fault("ssh-hang:match=crictl,node=node-0003,for=20")
    assert (f["match"], f.node, f.duration) == ("crictl", "node-0003", 20.0)
    f = parse_fault("metrics-garbage:mode=nan")
    assert f["mode"] == "nan"
    assert parse_fault(f.spec()).spec() == f.spec()


@pytest.mark.parametrize("spec, says", [
    ("nonsense", "unknown fault 'nonsense'"),
    ("api-5xx:rate=2", "out of range"),
    ("api-5xx:rate=lots", "is not a float"),
    ("api-down:for=0", "out of range"),
    ("api-down:for=99999", "out of range"),
    ("api-slow:speed=3", "unknown parameter 'speed'"),
    ("api-slow:delay", "expected KIND:KEY=VALUE"),
    ("metrics-garbage:mode=weird", "mode must be one of"),
])
def test_parse_fault_says_what_is_wrong_in_one_line(spec, says):
    with pytest.raises(FaultError) as err:
        parse_fault(spec)
    assert says in str(err.value) and "\n" not in str(err.value)


def test_hostile_content_and_broken_metrics():
    lines = hostile_messages(big=True)
    joined = "".join(lines)
    for needle in ("\x1b[31m", "\x1b]52;c;", "\x1b]0;", "[bold red]", "\udcff", "\x9b"):
        assert needle in joined
    assert max(len(x) for x in lines) > 1_000_000
    body = b"# TYPE a gauge\na 1\nb{x=\"y\"} 2\n" * 100
    assert garble_metrics(body, "truncate") == body[:len(body) // 2]
    assert b"NaN" in garble_metrics(body, "nan")
    assert b"this is not a metric" in garble_metrics(body, "garbage")


# -- the endpoint and the faults, against a lab of this module's own ------------------------------

@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    from tests.conftest import start_lab, stop_lab

    served = start_lab(tmp_path_factory.mktemp("faults") / "lab", "--nodes", "4", "--seed", "3")
    yield served
    stop_lab(served)


@pytest.mark.kubectl
def test_endpoint_lists_adds_clears_and_is_admin_only(lab):
    assert faults(lab)["faults"] == []
    added = faults(lab, "POST", {"kind": "api-slow", "delay": 0.1, "for": 60})
    assert added["fault"]["spec"] == "api-slow:for=60,delay=0.1" and added["fault"]["active"]
    listed = faults(lab)["faults"]
    assert [f["kind"] for f in listed] == ["api-slow"] and 0 < listed[0]["remaining"] <= 60
    denied = faults(lab, "POST", {"spec": "api-down:for=1"}, context="nodewb-lab-viewer",
                    check=False)
    assert denied["returncode"] != 0 and "Forbidden" in denied["stderr"]
    bad = faults(lab, "POST", {"spec": "api-down:for=-1"}, check=False)
    assert bad["returncode"] != 0 and "out of range" in bad["stderr"]
    cleared = faults(lab, "DELETE")
    assert cleared["cleared"] == ["api-slow:for=60,delay=0.1"] and cleared["faults"] == []


@pytest.mark.kubectl
def test_a_fault_stops_by_itself(lab):
    inject(lab, "api-5xx:rate=1,for=1.5")
    failed = lab.kubectl("get", "nodes", check=False)
    assert failed.returncode != 0 and "ServiceUnavailable" in failed.stderr
    until(lambda: lab.kubectl("get", "nodes", check=False).returncode == 0, 20,
          "the API answering again once the fault ended")
    assert faults(lab)["faults"] == []


@pytest.mark.kubectl
def test_api_down_refuses_then_comes_back_on_the_same_port(lab):
    fault = inject(lab, "api-down:for=2")
    until(lambda: "refused" in lab.kubectl("get", "nodes", check=False, timeout=10).stderr, 10,
          "connections refused")
    until(lambda: lab.kubectl("get", "nodes", check=False).returncode == 0, 20,
          "the API server back")
    assert time.time() >= fault["ends"] - 0.5


@pytest.mark.kubectl
def test_slow_answers(lab):
    inject(lab, "api-slow:delay=1.5,for=20")
    try:
        t0 = time.monotonic()
        lab.kubectl("get", "--raw", "/api/v1/nodes")
        assert time.monotonic() - t0 >= 1.5
    finally:
        faults(lab, "DELETE")


@pytest.mark.kubectl
def test_watch_gone_and_dropped_watch(lab):
    rv = json.loads(lab.kubectl("get", "--raw", "/api/v1/nodes").stdout)["metadata"][
        "resourceVersion"]
    inject(lab, "watch-gone:for=20")
    try:
        out = lab.kubectl("get", "--raw", f"/api/v1/nodes?watch=1&resourceVersion={rv}"
                                          "&timeoutSeconds=5", check=False).stdout
        first = json.loads(out.splitlines()[0])
        assert first["type"] == "ERROR" and first["object"]["code"] == 410
    finally:
        faults(lab, "DELETE", {"kind": "watch-gone"})
    inject(lab, "watch-drop:every=0.5,for=20")
    try:
        t0 = time.monotonic()
        cut = lab.kubectl("get", "--raw", f"/api/v1/nodes?watch=1&resourceVersion={rv}"
                                          "&timeoutSeconds=30", check=False, timeout=20)
        assert time.monotonic() - t0 < 10  # cut long before the watch's own 30 s
    finally:
        faults(lab)  # still listed while it lasts
        faults(lab, "DELETE")
    assert cut.returncode != 0 or cut.stdout.count("\n") < 100


@pytest.mark.openssh
def test_ssh_faults_with_openssh(lab):
    inject(lab, "ssh-huge:bytes=300000,match=uname,for=30")
    try:
        huge = lab.ssh("node-0001", "uname -a")
        assert len(huge.stdout) >= 300_000 and huge.stdout.startswith("Linux")
        assert len(lab.ssh("node-0001", "hostname").stdout) < 100  # other commands untouched
    finally:
        faults(lab, "DELETE")
    inject(lab, "ssh-hang:match=hostname,for=3")
    t0 = time.monotonic()
    assert lab.ssh("node-0002", "hostname").stdout.strip() == "node-0002"
    assert time.monotonic() - t0 >= 2.0  # held until the fault ended, then answered
    inject(lab, "bastion-down:for=2")
    time.sleep(0.5)
    down = lab.ssh("node-0001", "true", check=False)
    assert down.returncode == 255
    until(lambda: lab.ssh("node-0001", "true", check=False).returncode == 0, 20,
          "the bastion back")
    inject(lab, "ssh-drop:every=1,for=20")
    try:
        t0 = time.monotonic()
        cut = lab.ssh("node-0003", "journalctl -u kubelet -f", check=False, timeout=20)
        assert cut.returncode == 255 and time.monotonic() - t0 < 15
    finally:
        faults(lab, "DELETE")


@pytest.mark.openssh
def test_hostile_journal_reaches_the_wire_raw(lab):
    inject(lab, "journal-hostile:node=node-0004,for=3")
    raw = subprocess.run(["ssh", "-F", str(lab.ssh_config), "-o", "BatchMode=yes", "node-0004",
                          "journalctl -u kubelet -n 40"], capture_output=True, timeout=30).stdout
    assert b"\x1b]52;c;" in raw and b"\x1b[31m" in raw and b"[bold red]" in raw
    assert b"\xff\xfe" in raw  # invalid UTF-8 sent as bytes
    assert any(len(line) > 1_000_000 for line in raw.split(b"\n"))
    other = subprocess.run(["ssh", "-F", str(lab.ssh_config), "-o", "BatchMode=yes",
                            "node-0003", "journalctl -u kubelet -n 40"],
                           capture_output=True, timeout=30).stdout
    assert b"\x1b" not in other


@pytest.mark.kubectl
def test_broken_metrics_through_the_node_proxy(lab):
    def raw(path: str) -> bytes:
        return subprocess.run(["kubectl", "--kubeconfig", str(lab.kubeconfig), "get", "--raw",
                               path], capture_output=True, timeout=30, check=True).stdout

    path = "/api/v1/nodes/node-0002/proxy/metrics"
    clean = raw(path)
    inject(lab, "metrics-garbage:node=node-0002,mode=truncate,for=20")
    try:
        assert len(raw(path)) < len(clean) * 0.75
        faults(lab, "DELETE")
        inject(lab, "metrics-garbage:node=node-0002,mode=garbage,for=20")
        garbage = raw(path)
        assert b"this is not a metric" in garbage and b"\xff\xfe" in garbage
        assert b"this is not a metric" not in raw("/api/v1/nodes/node-0001/proxy/metrics")
    finally:
        faults(lab, "DELETE")


@pytest.mark.kubectl
def test_nodes_deleted_and_restored_on_demand(lab):
    control(lab, "delete-node", {"node": "node-0004"})
    names = lab.kubectl("get", "nodes", "-o", "name").stdout.split()
    assert "node/node-0004" not in names and len(names) == 3
    control(lab, "restore-node", {"node": "node-0004", "after": 0.5})
    until(lambda: "node/node-0004" in lab.kubectl("get", "nodes", "-o", "name").stdout, 10,
          "the node restored")


# -- faults given when the lab starts --------------------------------------------------------------

async def test_lab_takes_faults_at_start_and_they_run_out(tmp_path):
    import asyncio

    from lab.serve import Lab
    from probes.kube import Kube, KubeError

    with pytest.raises(FaultError, match="unknown fault 'api-dwn'"):
        Lab(tmp_path / "bad", nodes=1, faults=["api-dwn:for=3"])
    lab = Lab(tmp_path / "lab", nodes=2, faults=["api-5xx:rate=1,for=2", "api-down:after=60"])
    await lab.start()
    try:
        listed = lab.cluster.faults.listing()
        assert [f["kind"] for f in listed] == ["api-5xx", "api-down"]
        assert [f["active"] for f in listed] == [True, False]  # the outage is a minute away
        kube = Kube(str(tmp_path / "lab" / "kubeconfig"))
        with pytest.raises(KubeError, match="503"):
            await asyncio.to_thread(kube.get_json, "/api/v1/nodes", None, timeout=(5, 10),
                                    doing="list nodes")
        await asyncio.sleep(max(0.0, listed[0]["ends"] - time.time() + 0.2))
        body = await asyncio.to_thread(kube.get_json, "/api/v1/nodes", None, timeout=(5, 10),
                                       doing="list nodes")
        assert len(body["items"]) == 2
    finally:
        await lab.stop()


def test_lab_serve_takes_fault_flags(tmp_path):
    import contextlib
    import io

    from tui.cli import build_parser

    try:
        with contextlib.redirect_stderr(io.StringIO()):
            build_parser().parse_args(["lab", "serve", "--fault", "api-down"])
    except SystemExit:
        pytest.skip("`nodewb lab serve --fault` is not wired in tui/cli.py yet")
    from tests.conftest import start_lab, stop_lab

    served = start_lab(tmp_path / "lab", "--nodes", "2", "--fault", "api-5xx:rate=1,for=30",
                       "--fault", "ssh-hang:match=hostname,for=30")
    try:
        assert [f["kind"] for f in faults(served)["faults"]] == ["api-5xx", "ssh-hang"]
        failed = served.kubectl("get", "nodes", check=False)
        assert failed.returncode != 0 and "ServiceUnavailable" in failed.stderr
        faults(served, "DELETE")
        assert served.kubectl("get", "nodes", check=False).returncode == 0
    finally:
        stop_lab(served)
    bad = subprocess.run([sys.executable, "-m", "tui.cli", "lab", "serve", "--dir",
                          str(tmp_path / "bad"), "--fault", "api-slow:speed=2"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "unknown parameter 'speed'" in bad.stderr
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1

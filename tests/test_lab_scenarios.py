"""Each scenario's symptoms, seen the way an engineer sees them: kubectl and OpenSSH's ssh."""

from __future__ import annotations

import json
import re
import shutil
import time

import pytest

from tests.conftest import SCENARIO_NODES

pytestmark = [pytest.mark.kubectl, pytest.mark.openssh,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed"),
              pytest.mark.skipif(shutil.which("ssh") is None, reason="OpenSSH's ssh not installed")]


def node_json(lab, node: str) -> dict:
    return json.loads(lab.kubectl("get", "node", node, "-o", "json").stdout)


def condition(lab, node: str, ctype: str) -> dict:
    return next(c for c in node_json(lab, node)["status"]["conditions"] if c["type"] == ctype)


def test_scenarios_command_lists_every_scenario_with_domain_and_action():
    import contextlib
    import io

    from tui.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["scenarios", "--format", "json"]) == 0
    rows = json.loads(out.getvalue())
    names = {r["name"] for r in rows}
    assert set(SCENARIO_NODES) <= names
    domains = {"pleg_runtime_slow", "runtime_down", "cert_expired", "cni_network",
               "disk_pressure", "memory_pid_pressure", "apiserver_unreachable", "kubelet_config",
               "clock_skew"}
    assert domains <= {r["domain"] for r in rows}
    for r in rows:
        assert set(r) == {"name", "story", "domain", "action"}
        assert r["story"]


def test_healthy_node_is_ready_everywhere(served_lab):
    node = "node-0001"
    assert condition(served_lab, node, "Ready")["status"] == "True"
    assert served_lab.ssh(node, "systemctl is-active kubelet").stdout.strip() == "active"
    assert served_lab.ssh(node, "curl -sk https://localhost:10250/healthz").stdout.strip() == "ok"
    out = served_lab.ssh(node, "journalctl -u kubelet -n 100 --no-pager | grep -ci error",
                         check=False).stdout.strip()
    assert out == "0"


def test_containerd_deadlock(served_lab):
    node = SCENARIO_NODES["containerd-deadlock"]
    ready = condition(served_lab, node, "Ready")
    assert ready["status"] == "False"
    assert "PLEG is not healthy" in ready["message"]
    hung = served_lab.ssh(node, "timeout 3 crictl pods", check=False)
    assert hung.returncode == 124
    assert served_lab.ssh(node, "systemctl is-active containerd").stdout.strip() == "active"
    log = served_lab.ssh(node, "journalctl -u kubelet -n 200 --no-pager").stdout
    assert "PLEG is not healthy: pleg was last seen active" in log


def test_runtime_dead(served_lab):
    node = SCENARIO_NODES["runtime-dead"]
    state = served_lab.ssh(node, "systemctl is-active containerd", check=False)
    assert state.stdout.strip() == "failed" and state.returncode != 0
    crictl = served_lab.ssh(node, "crictl ps", check=False)
    assert crictl.returncode != 0
    assert "containerd.sock" in crictl.stderr + crictl.stdout
    assert "container runtime is down" in condition(served_lab, node, "Ready")["message"]


def test_cert_expired_with_pending_csr(served_lab):
    node = SCENARIO_NODES["cert-expired"]
    ready = condition(served_lab, node, "Ready")
    assert ready["status"] == "Unknown"
    assert ready["message"] == "Kubelet stopped posting node status."
    csrs = served_lab.kubectl("get", "csr").stdout
    assert re.search(rf"system:node:{node}.*Pending", csrs), csrs
    dates = served_lab.ssh(node, "openssl x509 -in /var/lib/kubelet/pki/kubelet-client-current.pem"
                                 " -noout -enddate").stdout
    end = time.mktime(time.strptime(dates.strip().split("=", 1)[1], "%b %d %H:%M:%S %Y GMT"))
    assert end - time.timezone < time.time()
    log = served_lab.ssh(node, "journalctl -u kubelet -n 300 --no-pager").stdout
    assert "Unauthorized" in log


def test_cni_binary_missing(served_lab):
    node = SCENARIO_NODES["cni-binary-missing"]
    listing = served_lab.ssh(node, "ls /opt/cni/bin").stdout.split()
    assert "calico" not in listing and "portmap" in listing
    ready = condition(served_lab, node, "Ready")
    assert "cni plugin not initialized" in ready["message"]
    assert "NetworkPluginNotReady" in ready["message"]


def test_vxlan_missing(served_lab):
    node = SCENARIO_NODES["vxlan-missing"]
    assert served_lab.ssh(node, "lsmod | grep vxlan", check=False).returncode == 1
    assert condition(served_lab, node, "NetworkUnavailable")["status"] == "True"
    assert node_json(served_lab, node)["status"]["nodeInfo"]["kernelVersion"] != \
        node_json(served_lab, "node-0001")["status"]["nodeInfo"]["kernelVersion"]
    # the runbook's decoy: the kubelet journal screams PLEG, though the cause is the CNI
    log = served_lab.ssh(node, "journalctl -u kubelet -n 200 --no-pager").stdout
    decoys = re.findall(r'kubelet\.go:\d+\] "Skipping pod synchronization" err="PLEG is not '
                        r'healthy: pleg was last seen active (\d+m[\d.]+s) ago; threshold is '
                        r'3m0s"', log)
    assert len(decoys) >= 3, log[-2000:]
    assert all(int(d.split("m")[0]) >= 3 for d in decoys)
    ready = condition(served_lab, node, "Ready")
    assert ready["status"] == "False"
    assert "cni plugin not initialized" in ready["message"]
    assert "PLEG" not in ready["message"]
    (calico,) = [p.split("/", 1)[1] for p in served_lab.kubectl(
        "get", "pods", "-n", "kube-system", "--field-selector", f"spec.nodeName={node}",
        "-o", "name").stdout.split() if p.split("/", 1)[1].startswith("calico-node-")]
    logs = served_lab.kubectl("logs", "-n", "kube-system", calico).stdout
    assert "failed to create vxlan tunnel device" in logs


def test_healthy_node_history_matches_its_uptime(served_lab):
    node = "node-0002"
    metrics = served_lab.kubectl("get", "--raw", f"/api/v1/nodes/{node}/proxy/metrics").stdout
    values = {line.split()[0]: float(line.split()[1]) for line in metrics.splitlines()
              if line and not line.startswith("#")}
    running = time.time() - values["process_start_time_seconds"]
    assert running > 86400  # days of uptime ...
    relists = values["kubelet_pleg_relist_duration_seconds_count"]
    assert 0.8 * running < relists < 1.05 * running  # ... and a relist about every second
    # containerd logged its start when it started, long before the lab's last quarter hour
    log = served_lab.ssh(node, "journalctl -u containerd --no-pager -o short-unix").stdout
    booted = [line for line in log.splitlines() if "containerd successfully booted" in line]
    assert booted, log
    started = float(booted[0].split()[0])
    assert started < time.time() - 86400
    shown = served_lab.ssh(node, "systemctl show containerd -p ExecMainStartTimestamp --value"
                           ).stdout.strip()
    since = time.mktime(time.strptime(shown, "%a %Y-%m-%d %H:%M:%S %Z"))
    assert abs(started - since) < 5, (started, shown)


def test_boot_and_machine_ids_agree_between_api_and_node(served_lab):
    for node in ("node-0001", SCENARIO_NODES["vxlan-missing"]):
        info = node_json(served_lab, node)["status"]["nodeInfo"]
        proc = served_lab.ssh(node, "cat /proc/sys/kernel/random/boot_id").stdout.strip()
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                            proc), proc
        assert info["bootID"] == proc
        boots = served_lab.ssh(node, "journalctl --list-boots --no-pager").stdout.splitlines()
        assert boots[-1].split()[1] == proc.replace("-", "")
        machine_id = served_lab.ssh(node, "cat /etc/machine-id").stdout.strip()
        assert info["machineID"] == machine_id
    # the rebooted node's event names the boot it came up with
    node = SCENARIO_NODES["vxlan-missing"]
    events = json.loads(served_lab.kubectl(
        "get", "events", "-n", "default", "--field-selector",
        f"involvedObject.name={node},reason=Rebooted", "-o", "json").stdout)["items"]
    boot_id = node_json(served_lab, node)["status"]["nodeInfo"]["bootID"]
    assert events and events[0]["message"].endswith(f"boot id: {boot_id}")
    assert boot_id != node_json(served_lab, "node-0001")["status"]["nodeInfo"]["bootID"]


def test_inode_exhaustion_while_df_h_says_half(served_lab):
    node = SCENARIO_NODES["inode-exhaustion"]
    df_h = served_lab.ssh(node, "df -h /var/lib/kubelet").stdout.splitlines()[-1].split()
    df_i = served_lab.ssh(node, "df -i /var/lib/kubelet").stdout.splitlines()[-1].split()
    assert 35 <= int(df_h[4].rstrip("%")) <= 65, df_h
    assert int(df_i[4].rstrip("%")) >= 99, df_i
    assert condition(served_lab, node, "DiskPressure")["status"] == "True"


def test_disk_full(served_lab):
    node = SCENARIO_NODES["disk-full"]
    df_h = served_lab.ssh(node, "df -h /var/log").stdout.splitlines()[-1].split()
    assert int(df_h[4].rstrip("%")) >= 95
    assert condition(served_lab, node, "DiskPressure")["status"] == "True"


def test_kubelet_oom(served_lab):
    node = SCENARIO_NODES["kubelet-oom"]
    dmesg = served_lab.ssh(node, "dmesg").stdout
    assert re.search(r"Out of memory: Killed process \d+ \(kubelet\)", dmesg)
    restarts = served_lab.ssh(node, "systemctl show kubelet -p NRestarts --value").stdout
    assert int(restarts.strip()) >= 3
    assert condition(served_lab, node, "Ready")["status"] == "Unknown"


def test_too_many_pods(served_lab):
    node = SCENARIO_NODES["too-many-pods"]
    pods = served_lab.kubectl("get", "pods", "-A", "--field-selector", f"spec.nodeName={node}",
                              "--no-headers").stdout.splitlines()
    assert len(pods) > 110
    assert node_json(served_lab, node)["status"]["capacity"]["pods"] == "250"
    assert condition(served_lab, node, "MemoryPressure")["status"] == "True"


def test_pid_exhaustion(served_lab):
    node = SCENARIO_NODES["pid-exhaustion"]
    assert condition(served_lab, node, "PIDPressure")["status"] == "True"
    assert condition(served_lab, node, "Ready")["status"] == "False"


def test_api_partition(served_lab):
    node = SCENARIO_NODES["api-partition"]
    assert condition(served_lab, node, "Ready")["status"] == "Unknown"
    proxied = served_lab.kubectl("get", "--raw", f"/api/v1/nodes/{node}/proxy/healthz",
                                 check=False, timeout=60)
    assert proxied.returncode != 0
    # The bastion still reaches the node, and the kubelet there is alive.
    assert served_lab.ssh(node, "curl -sk https://localhost:10250/healthz").stdout.strip() == "ok"
    api = served_lab.info["api"]
    code = served_lab.ssh(node, f"curl -k -s -m 3 -o /dev/null -w '%{{http_code}}' {api}/healthz",
                          check=False)
    assert code.returncode == 28


def test_clock_skew(served_lab):
    node = SCENARIO_NODES["clock-skew"]
    status = served_lab.ssh(node, "timedatectl").stdout
    assert "System clock synchronized: no" in status
    node_epoch = int(served_lab.ssh(node, "date +%s").stdout.strip())
    assert time.time() - node_epoch > 86400
    log = served_lab.ssh(node, "journalctl -u kubelet -n 100 --no-pager").stdout
    assert "certificate has expired or is not yet valid" in log


def test_cgroup_driver_mismatch(served_lab):
    node = SCENARIO_NODES["cgroup-driver-mismatch"]
    log = served_lab.ssh(node, "journalctl -u kubelet -n 50 --no-pager").stdout
    assert 'misconfiguration: kubelet cgroup driver: "cgroupfs" is different' in log
    config = served_lab.ssh(node, "grep cgroupDriver /var/lib/kubelet/config.yaml").stdout
    assert "cgroupfs" in config
    assert condition(served_lab, node, "Ready")["status"] == "Unknown"


def test_swap_on(served_lab):
    node = SCENARIO_NODES["swap-on"]
    assert served_lab.ssh(node, "swapon --show").stdout.strip()
    log = served_lab.ssh(node, "journalctl -u kubelet -n 50 --no-pager").stdout
    assert "running with swap on is not supported" in log


def test_pleg_slow_io(served_lab):
    node = SCENARIO_NODES["pleg-slow-io"]
    ready = condition(served_lab, node, "Ready")
    assert ready["status"] == "False" and "PLEG is not healthy" in ready["message"]
    metrics = served_lab.kubectl("get", "--raw", f"/api/v1/nodes/{node}/proxy/metrics").stdout
    slow = [line for line in metrics.splitlines()
            if line.startswith('kubelet_pleg_relist_duration_seconds_bucket{le="10"}')]
    total = [line for line in metrics.splitlines()
             if line.startswith('kubelet_pleg_relist_duration_seconds_count')]
    assert slow and total
    assert float(slow[0].split()[-1]) < float(total[0].split()[-1])


def test_events_tell_the_story(served_lab):
    node = SCENARIO_NODES["inode-exhaustion"]
    events = served_lab.kubectl("get", "events", "-n", "default", "--field-selector",
                                f"involvedObject.name={node}").stdout
    assert "EvictionThresholdMet" in events

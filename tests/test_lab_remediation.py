"""The right fix heals a lab node; the wrong one does not. Driven with kubectl and OpenSSH's ssh."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import LAB_NODES, SCENARIO_NODES, start_lab, stop_lab

pytestmark = [pytest.mark.kubectl, pytest.mark.openssh, pytest.mark.slow]

HEAL_WITHIN = 90.0


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    directory = tmp_path_factory.mktemp("heal") / "lab"
    specs = [f"--scenario={name}@{node}" for name, node in SCENARIO_NODES.items()]
    served = start_lab(directory, "--nodes", str(LAB_NODES), "--seed", "11", *specs)
    yield served
    stop_lab(served)


def conditions(lab, node: str) -> dict[str, dict]:
    obj = json.loads(lab.kubectl("get", "node", node, "-o", "json").stdout)
    return {c["type"]: c for c in obj["status"]["conditions"]}


def wait_for(lab, node: str, ctype: str, status: str, within: float = HEAL_WITHIN) -> float:
    started = time.monotonic()
    last = None
    while time.monotonic() - started < within:
        last = conditions(lab, node)[ctype]
        if last["status"] == status:
            return time.monotonic() - started
        time.sleep(1.0)
    raise AssertionError(f"{node} {ctype} still {last['status']} after {within:.0f} s: "
                         f"{last.get('message')}")


def stays(lab, node: str, ctype: str, status: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = conditions(lab, node)[ctype]["status"]
        assert got != status, f"{node} {ctype} became {status}, but this fix should not work"
        time.sleep(2.0)


def pods_on(lab, node: str, namespace: str, prefix: str) -> list[str]:
    out = lab.kubectl("get", "pods", "-n", namespace, "--field-selector",
                      f"spec.nodeName={node}", "-o", "name").stdout.split()
    return [p.split("/", 1)[1] for p in out if p.split("/", 1)[1].startswith(prefix)]


def test_restart_kubelet_does_not_fix_a_deadlocked_runtime_but_restart_containerd_does(lab):
    node = SCENARIO_NODES["containerd-deadlock"]
    lab.ssh(node, "sudo systemctl restart kubelet")
    stays(lab, node, "Ready", "True", 20)
    assert lab.ssh(node, "timeout 3 crictl ps", check=False).returncode == 124
    started = time.monotonic()
    lab.ssh(node, "sudo systemctl restart containerd", timeout=60)
    wait_for(lab, node, "Ready", "True")
    assert time.monotonic() - started > 10  # the stop timed out and systemd had to SIGKILL it
    log = lab.ssh(node, "journalctl -u containerd -n 30 --no-pager").stdout
    assert "State 'stop-sigterm' timed out. Killing." in log
    assert lab.ssh(node, "timeout 3 crictl ps").returncode == 0


def test_dead_runtime_restarted(lab):
    node = SCENARIO_NODES["runtime-dead"]
    lab.ssh(node, "sudo systemctl restart containerd")
    wait_for(lab, node, "Ready", "True")
    assert lab.ssh(node, "systemctl is-active containerd").stdout.strip() == "active"


def test_modprobe_vxlan_and_persist(lab):
    node = SCENARIO_NODES["vxlan-missing"]
    lab.ssh(node, "sudo systemctl restart containerd", timeout=60)
    stays(lab, node, "Ready", "True", 12)
    lab.ssh(node, "sudo modprobe vxlan && echo vxlan | sudo tee /etc/modules-load.d/vxlan.conf")
    # calico-node creates its tunnel device only when it next retries: Ready about 30 s on
    stays(lab, node, "NetworkUnavailable", "False", 12)
    wait_for(lab, node, "NetworkUnavailable", "False")
    wait_for(lab, node, "Ready", "True")
    assert "vxlan" in lab.ssh(node, "cat /etc/modules-load.d/vxlan.conf").stdout
    (calico,) = pods_on(lab, node, "kube-system", "calico-node-")
    logs = lab.kubectl("logs", "-n", "kube-system", calico).stdout
    assert 'VXLAN tunnel device configured MTU=8951 device="vxlan.calico"' in logs
    assert "Overall health status changed: live=true ready=true" in logs
    assert "vxlan.calico" in lab.ssh(node, "ip addr show").stdout


def test_approve_pending_csr(lab):
    node = SCENARIO_NODES["cert-expired"]
    lab.ssh(node, "sudo systemctl restart kubelet")
    stays(lab, node, "Ready", "True", 15)
    csrs = json.loads(lab.kubectl("get", "csr", "-o", "json").stdout)["items"]
    pending = [c["metadata"]["name"] for c in csrs
               if c["spec"]["username"] == f"system:node:{node}" and not c["status"]]
    assert len(pending) == 1
    lab.kubectl("certificate", "approve", pending[0])
    wait_for(lab, node, "Ready", "True")
    dates = lab.ssh(node, "openssl x509 -in /var/lib/kubelet/pki/kubelet-client-current.pem "
                          "-noout -enddate").stdout
    end = time.mktime(time.strptime(dates.strip().split("=", 1)[1], "%b %d %H:%M:%S %Y GMT"))
    assert end - time.timezone > time.time() + 300 * 86400


def test_reapply_cni_restores_the_plugin(lab):
    node = SCENARIO_NODES["cni-binary-missing"]
    (calico,) = pods_on(lab, node, "kube-system", "calico-node-")
    lab.kubectl("delete", "pod", "-n", "kube-system", calico, "--wait=false")
    wait_for(lab, node, "Ready", "True")
    assert "calico" in lab.ssh(node, "ls /opt/cni/bin").stdout.split()
    assert pods_on(lab, node, "kube-system", "calico-node-") != [calico]


def test_vacuum_does_not_free_inodes_but_pruning_images_does(lab):
    node = SCENARIO_NODES["inode-exhaustion"]
    lab.ssh(node, "sudo journalctl --vacuum-size=500M")
    stays(lab, node, "DiskPressure", "False", 15)
    lab.ssh(node, "sudo crictl rmi --prune")
    wait_for(lab, node, "DiskPressure", "False")
    wait_for(lab, node, "Ready", "True")
    df_i = lab.ssh(node, "df -i /var/lib/containerd").stdout.splitlines()[-1].split()
    assert int(df_i[4].rstrip("%")) < 50


def test_vacuum_frees_a_full_disk(lab):
    node = SCENARIO_NODES["disk-full"]
    lab.ssh(node, "sudo journalctl --vacuum-size=500M")
    wait_for(lab, node, "DiskPressure", "False")
    wait_for(lab, node, "Ready", "True")


def test_deleting_the_leaking_pod_stops_the_kubelet_ooms(lab):
    node = SCENARIO_NODES["kubelet-oom"]
    (leaker,) = pods_on(lab, node, "logging", "fluentd-aggregator-")
    lab.kubectl("delete", "pod", "-n", "logging", leaker, "--wait=false")
    wait_for(lab, node, "Ready", "True")
    wait_for(lab, node, "MemoryPressure", "False")


def test_deleting_the_forking_pod_frees_pids(lab):
    node = SCENARIO_NODES["pid-exhaustion"]
    (forker,) = pods_on(lab, node, "batch", "report-gen-")
    lab.kubectl("delete", "pod", "-n", "batch", forker, "--wait=false")
    wait_for(lab, node, "PIDPressure", "False")
    wait_for(lab, node, "Ready", "True")


def test_deleting_the_io_heavy_pod_heals_pleg(lab):
    node = SCENARIO_NODES["pleg-slow-io"]
    (heavy,) = pods_on(lab, node, "batch", "etl-compactor-")
    lab.kubectl("delete", "pod", "-n", "batch", heavy, "--wait=false")
    wait_for(lab, node, "Ready", "True")


def test_drain_heals_an_overpacked_node(lab):
    node = SCENARIO_NODES["too-many-pods"]
    lab.kubectl("drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--force",
                "--timeout=120s", timeout=180)
    wait_for(lab, node, "Ready", "True")
    wait_for(lab, node, "MemoryPressure", "False")
    status = lab.kubectl("get", "node", node, "--no-headers").stdout.split()[1]
    assert status == "Ready,SchedulingDisabled"
    lab.kubectl("uncordon", node)


def test_clock_step_heals_skew(lab):
    node = SCENARIO_NODES["clock-skew"]
    lab.ssh(node, "sudo chronyc makestep")
    wait_for(lab, node, "Ready", "True")
    assert "System clock synchronized: yes" in lab.ssh(node, "timedatectl").stdout


def test_fixing_the_cgroup_driver(lab):
    node = SCENARIO_NODES["cgroup-driver-mismatch"]
    lab.ssh(node, "sudo sed -i 's/cgroupDriver: cgroupfs/cgroupDriver: systemd/' "
                  "/var/lib/kubelet/config.yaml")
    wait_for(lab, node, "Ready", "True")
    assert lab.ssh(node, "systemctl is-active kubelet").stdout.strip() == "active"


def test_disabling_swap(lab):
    node = SCENARIO_NODES["swap-on"]
    lab.ssh(node, "sudo swapoff -a && sudo sed -i '/ swap / s/^/#/' /etc/fstab")
    wait_for(lab, node, "Ready", "True")
    assert lab.ssh(node, "swapon --show").stdout.strip() == ""


def test_restarting_kubelet_during_a_partition_does_not_help(lab):
    node = SCENARIO_NODES["api-partition"]
    lab.ssh(node, "sudo systemctl restart kubelet")
    stays(lab, node, "Ready", "True", 15)


def test_drain_of_an_unreachable_node_hangs_on_its_pods(lab):
    node = SCENARIO_NODES["api-partition"]
    result = lab.kubectl("drain", node, "--ignore-daemonsets", "--delete-emptydir-data",
                         "--force", "--timeout=8s", check=False, timeout=60)
    assert result.returncode != 0
    assert "SchedulingDisabled" in lab.kubectl("get", "node", node, "--no-headers").stdout
    lab.kubectl("uncordon", node)


def test_kubelet_restarted_during_partition_storms_when_it_heals(lab):
    """The restart above (test_restarting_kubelet_during_a_partition_does_not_help) leaves the
    kubelet without its pod state: when the network returns, relists crawl before Ready."""
    import subprocess

    node = SCENARIO_NODES["api-partition"]
    lab.ssh(node, "sudo systemctl restart kubelet")
    heal = subprocess.run(["kubectl", "--kubeconfig", str(lab.kubeconfig), "create", "--raw",
                           "/lab/v1/partition", "-f", "-"],
                          input=json.dumps({"node": node, "on": False}), capture_output=True,
                          text=True, timeout=30)
    assert heal.returncode == 0, heal.stderr
    wait_for(lab, node, "Ready", "False", within=60)
    ready = conditions(lab, node)["Ready"]
    assert "PLEG is not healthy" in ready["message"] or ready["status"] == "False"

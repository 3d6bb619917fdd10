"""The decision tree (triage.rules, triage.tree, triage.verdict) on hand-built observations, and
on NodeProbes run against the served lab."""

from __future__ import annotations

import ast
import asyncio
import json
from pathlib import Path

import pytest

from probes import node_checks as nc
from probes.observation import Observation, Status
from triage import rules as R
from triage.tree import Diagnosis, blast_radius
from triage.verdict import KEYS, Verdict

NODE = "node-0042"
OK, BAD, HUNG, ERROR, SKIPPED = Status.OK, Status.BAD, Status.HUNG, Status.ERROR, Status.SKIPPED


def ob(probe: str, status: Status = OK, summary: str = "", data: dict | None = None,
       raw: str = "", reason: str = "") -> Observation:
    return Observation(probe, NODE, status, 1.0e9, 0.1, summary or f"{probe} {status.value}",
                       data or {}, "test", raw, reason)


def journal(lines: list[str], unit: str = "kubelet") -> Observation:
    found, n = nc.scan_journal(lines)
    matched = {f["pattern"]: f["count"] for f in found if f["count"]}
    return ob(f"node.journal.{unit}", BAD if matched else OK, f"{unit} journal",
              {"unit": unit, "lines": n, "patterns": found, "matched": matched},
              "\n".join(lines))


def node(ready: str = "True", set_by: str = "kubelet", reason: str = "KubeletReady",
         message: str = "", **conds: str) -> Observation:
    conditions = {"Ready": ready, "MemoryPressure": "False", "DiskPressure": "False",
                  "PIDPressure": "False", "NetworkUnavailable": "False"}
    conditions.update(conds)
    pressures = [k for k, v in conditions.items() if k != "Ready" and v == "True"]
    bad = ready != "True" or bool(pressures)
    return ob("api.node", BAD if bad else OK, f"Ready={ready} ({reason}, set by {set_by})",
              {"ready": ready, "reason": reason, "message": message, "set_by": set_by,
               "heartbeat_age": 2.0 if set_by == "kubelet" else 600.0,
               "conditions": conditions, "pressures": pressures, "zone": "us-east-1b"})


def metrics(pleg_p99: float = 0.02, last_relist: float = 1.0, cert_ttl: float = 3e7,
            breaches: list[str] | None = None) -> Observation:
    signals = {"pleg_relist_p99": {"value": pleg_p99, "unit": "s"},
               "pleg_last_relist_age": {"value": last_relist, "unit": "s"},
               "cert_ttl": {"value": cert_ttl, "unit": "s"},
               "cert_renew_errors": {"value": 0.0, "unit": ""},
               "breaches": breaches or []}
    return ob("kubelet.metrics", BAD if breaches else OK, "metrics", {"signals": signals})


def unit(name: str, active: str = "active", sub: str = "running", restarts: int = 0):
    good = active == "active" and sub == "running"
    return ob(f"node.systemd.{name}", OK if good else BAD, f"{name} {active}/{sub}",
              {"unit": name, "active_state": active, "sub_state": sub, "restarts": restarts})


def healthy_set() -> list[Observation]:
    """Every probe of a healthy node, decided OK."""
    return [
        node(),
        unit("kubelet"), unit("containerd"),
        ob("node.kubelet.process", OK, "kubelet RSS 120 MB", {"running": True, "rss_mb": 120,
                                                               "rss_limit_mb": 500}),
        ob("node.dmesg.oom", OK, "no OOM kills", {"kills": 0, "kubelet_kills": 0}),
        ob("kubelet.healthz", OK, "healthz 200", {"failed_checks": []}, "ok"),
        journal(["I1121 kubelet.go:100] started", "I1121 syncing pods"]),
        journal(["level=info msg=\"serving\""], "containerd"),
        ob("node.crictl.ps", OK, "crictl ps answered in 0.02 s: 11 containers"),
        ob("node.crictl.pods", OK, "crictl pods answered in 0.02 s"),
        ob("node.crictl.info", OK, "crictl info", {"conditions": {
            "RuntimeReady": {"status": True}, "NetworkReady": {"status": True}}}),
        metrics(),
        ob("node.cert.client", OK, "valid for 300 days", {"state": "valid", "ttl": 2.6e7}),
        ob("node.apiserver", OK, "API server reachable (HTTP 200)", {"http_code": 200}),
        ob("api.lease", OK, "lease renewed 3 s ago", {"renew_age": 3.0}),
        ob("node.df.space", OK, "space 25%"), ob("node.df.inodes", OK, "inodes 8%"),
        ob("node.pods", OK, "11 pods of maxPods 110", {"pods": 11, "max_pods": 110}),
        ob("node.cni", OK, "CNI ok"),
        ob("node.kmod", OK, "modules loaded", {"missing": []}),
        ob("node.swap", OK, "swap is off", {"swap_on": False}),
        ob("node.ntp", OK, "clock ok", {"offset_seconds": 0.2, "ntp_synchronized": True,
                                        "max_offset": 5.0}),
    ]


def with_(base: list[Observation], *replace: Observation) -> list[Observation]:
    by = {o.probe: o for o in base}
    for o in replace:
        by[o.probe] = o
    return list(by.values())


def diagnose(observations: list[Observation], **kw) -> Diagnosis:
    d = Diagnosis(NODE, **kw)
    for o in observations:
        d.add(o)
    return d


PLEG_LINE = ('E1121 09:07:50.901695 2086 kubelet.go:2412] "Skipping pod synchronization" '
             'err="PLEG is not healthy: pleg was last seen active 4m27.012s ago; threshold is 3m0s"')
PLEG_MSG = "PLEG is not healthy: pleg was last seen active 4m27.012s ago; threshold is 3m0s"
CNI_LINE = ('E1121 kubelet.go:3002] "Container runtime network not ready" networkReady="'
            'NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns '
            'error: cni plugin not initialized"')
X509_LINE = ('E1121 certificate_manager.go:562] "Unhandled Error" err="kubernetes.io/'
             'kube-apiserver-client-kubelet: Failed while requesting a signed certificate from '
             'the control plane: x509: certificate has expired or is not yet valid"')
LEASE_LINE = ('E1121 controller.go:145] "Failed to ensure lease exists, will retry" err="Get '
              '\\"https://10.0.0.1:6443/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/'
              'leases/node-0042?timeout=10s\\": dial tcp 10.0.0.1:6443: i/o timeout"')
UPDATE_LEASE = 'E1121 controller.go:115] "Failed to update lease" err="context deadline exceeded"'


# -- one per domain -----------------------------------------------------------------------------
CASES = {
    "pleg_runtime_slow": [
        node("False", message=PLEG_MSG, reason="KubeletNotReady"),
        journal([PLEG_LINE] * 3),
        metrics(pleg_p99=45.0, last_relist=240.0,
                breaches=["PLEG relist p99 45.00s (warning above 10 s)"]),
    ],
    "runtime_down": [
        node("False", message="container runtime is down, " + PLEG_MSG,
             reason="KubeletNotReady"),
        journal([PLEG_LINE]),
        ob("node.crictl.ps", HUNG, "crictl ps did not return in 10 s: the container runtime is "
                                   "hung", {"timed_out": True}),
        metrics(pleg_p99=60.0, last_relist=600.0, breaches=["no PLEG relist for 10m"]),
    ],
    "cert_expired": [
        node("Unknown", set_by="node-controller", reason="NodeStatusUnknown"),
        journal([X509_LINE, 'E1121 "Error updating node status" err="Unauthorized"']),
        ob("node.cert.client", BAD, "client certificate expired 9 minutes ago",
           {"state": "expired", "ttl": -540.0}),
        ob("node.apiserver", OK, "API server reachable (HTTP 200)", {"http_code": 200}),
    ],
    "cni_network": [
        node("False", message="container runtime network not ready: NetworkReady=false "
                              "reason:NetworkPluginNotReady", NetworkUnavailable="True"),
        ob("node.cni", BAD, "CNI: plugin binaries missing from /opt/cni/bin: calico",
           {"missing": ["calico"]}, "/opt/cni/bin: bandwidth bridge"),
    ],
    "disk_pressure": [
        node("False", reason="KubeletNotReady"),
        ob("node.df.space", OK, "space: /var/lib/kubelet 50% (/)"),
        ob("node.df.inodes", BAD, "inodes 100% used on / (above 85%)",
           {"over": ["/var/lib/kubelet"]}, "/var/lib/kubelet: /dev/sda1 6553600 6553600 0 100% /"),
    ],
    "memory_pid_pressure": [
        node("False", reason="KubeletNotReady"),
        ob("node.dmesg.oom", BAD, "2 OOM kills in the kernel log: kubelet x2",
           {"kills": 2, "kubelet_kills": 2},
           "Out of memory: Killed process 2211 (kubelet) total-vm:2000000kB"),
    ],
    "apiserver_unreachable": [
        node("Unknown", set_by="node-controller", reason="NodeStatusUnknown"),
        journal([LEASE_LINE, UPDATE_LEASE]),
        ob("node.apiserver", HUNG, "curl to the API server did not finish (partition)",
           {"http_code": None}),
    ],
    "kubelet_config": [
        node("Unknown", set_by="node-controller", reason="NodeStatusUnknown"),
        ob("node.kubelet.process", BAD, "no kubelet process running", {"running": False}),
        journal(['E1121 run.go:74] "command failed" err="failed to run Kubelet: misconfiguration: '
                 'kubelet cgroup driver: \\"cgroupfs\\" is different from docker cgroup driver: '
                 '\\"systemd\\""']),
    ],
    "clock_skew": [
        node("Unknown", set_by="node-controller", reason="NodeStatusUnknown"),
        ob("node.ntp", BAD, "clock: NTP not synchronised; node clock 174035 s behind ours",
           {"offset_seconds": -174035.0, "ntp_synchronized": False, "max_offset": 5.0}),
        journal([X509_LINE]),
    ],
}


@pytest.mark.parametrize("domain", sorted(CASES))
def test_each_domain_is_confirmed(domain):
    d = diagnose(CASES[domain])
    states = d.domains()
    assert states[domain].status == "confirmed"
    assert states[domain].evidence and all(isinstance(e, str) and e for e in states[domain].evidence)
    v = d.verdict()
    assert v.verdict == domain
    leaf = R.LEAVES[domain]
    assert v.fix == list(leaf.fix) and v.fix
    assert set(leaf.actions) <= set(v.actions)
    assert v.dont and v.verify


@pytest.mark.parametrize("domain", sorted(CASES))
def test_each_domain_also_within_a_full_probe_set(domain):
    """The same bad observations on top of an otherwise healthy node."""
    assert diagnose(with_(healthy_set(), *CASES[domain])).verdict().verdict == domain


def test_swap_on_is_kubelet_config():
    v = diagnose([journal(['E1121 "command failed" err="failed to run Kubelet: running with swap '
                           'on is not supported, please disable swap or set --fail-swap-on flag '
                           'to false"']),
                  ob("node.swap", BAD, "swap is on (/swap.img)", {"swap_on": True})]).verdict()
    assert v.verdict == "kubelet_config" and "disable-swap" in v.actions


def test_runtime_socket_missing_is_runtime_down():
    d = diagnose([journal(['E1121 remote_runtime.go:90] "failed to connect to containerd" '
                           'err="dial unix /run/containerd/containerd.sock: connect: no such '
                           'file or directory"'])])
    assert d.verdict().verdict == "runtime_down"
    assert any("failed to connect to containerd" in e for e in d.domains()["runtime_down"].evidence)


def test_evidence_quotes_the_log_line():
    d = diagnose(CASES["cert_expired"])
    ev = d.domains()["cert_expired"].evidence
    assert any("x509: certificate has expired or is not yet valid" in e for e in ev)
    assert any("expired 9 minutes ago" in e for e in ev)


# -- healthy, unknown ------------------------------------------------------------------------------
def test_healthy_node_is_healthy():
    d = diagnose(healthy_set())
    v = d.verdict()
    assert v.verdict == "healthy"
    assert v.next_probes == [] and v.fix == [] and v.actions == []
    states = d.domains()
    assert all(s.status in ("ruled_out", "untested") for s in states.values())
    for dom in ("runtime_down", "pleg_runtime_slow", "cert_expired", "apiserver_unreachable",
                "disk_pressure", "memory_pid_pressure", "cni_network", "clock_skew"):
        assert states[dom].status == "ruled_out", dom


def test_nothing_decided_is_unknown():
    skipped = [nc.skipped(p, NODE, "no SSH configured") for p in
               ("node.crictl.ps", "node.df.inodes", "node.journal.kubelet")]
    v = diagnose(skipped).verdict()
    assert v.verdict == "unknown"
    assert {d["status"] for d in v.domains} == {"untested"}
    assert "api.node" in v.next_probes and "node.crictl.ps" in v.next_probes
    assert v.actions == [] and v.fix == []


def test_suspicion_alone_is_unknown_not_a_guess():
    v = diagnose([node("False", message=PLEG_MSG, reason="KubeletNotReady"),
                  journal([PLEG_LINE])]).verdict()
    assert v.verdict == "unknown"
    pleg = next(d for d in v.domains if d["id"] == "pleg_runtime_slow")
    assert pleg["status"] == "suspected"
    # the runbook order: the runtime is tested next
    assert "node.crictl.ps" in v.next_probes
    assert v.next_probes.index("node.crictl.ps") < v.next_probes.index("node.ntp")


def test_ready_alone_with_nothing_bad_is_healthy_and_notready_alone_is_unknown():
    assert diagnose([node()]).verdict().verdict == "healthy"
    assert diagnose([node("False", reason="KubeletNotReady")]).verdict().verdict == "unknown"


def test_error_observations_decide_nothing():
    v = diagnose([ob("node.df.space", ERROR, "could not run it", reason="permission denied"),
                  ob("node.ntp", ERROR, "could not run it")]).verdict()
    assert v.verdict == "unknown"


# -- precedence ----------------------------------------------------------------------------------
def test_vxlan_decoy_is_cni_network():
    """PLEG lines and a slow relist are the decoy; NetworkUnavailable and vxlan missing decide."""
    obs = with_(healthy_set(),
                node("False", message=PLEG_MSG, reason="KubeletNotReady",
                     NetworkUnavailable="True"),
                journal([PLEG_LINE] * 5 + [CNI_LINE]),
                journal([PLEG_LINE], "containerd"),
                metrics(pleg_p99=30.0, last_relist=200.0, breaches=["PLEG relist p99 30s"]),
                ob("node.kmod", BAD, "kernel module not loaded: vxlan",
                   {"missing": ["vxlan"], "modules": {"vxlan": False}}))
    d = diagnose(obs)
    v = d.verdict()
    assert v.verdict == "cni_network"
    states = d.domains()
    assert states["pleg_runtime_slow"].status == "confirmed"  # real, but explained
    assert any("vxlan" in e for e in states["cni_network"].evidence)
    assert "modprobe-vxlan" in v.actions
    assert any("cni_network" in n and "pleg_runtime_slow" in n for n in v.notes)


def test_vxlan_decoy_without_metrics_or_cni_lines():
    d = diagnose([node("False", message=PLEG_MSG, reason="KubeletNotReady",
                       NetworkUnavailable="True"),
                  journal([PLEG_LINE] * 5),
                  ob("node.kmod", BAD, "kernel module not loaded: vxlan", {"missing": ["vxlan"]})])
    assert d.verdict().verdict == "cni_network"
    assert d.domains()["pleg_runtime_slow"].status == "suspected"


def test_partition_explains_cert_and_lease_symptoms():
    obs = with_(healthy_set(),
                node("Unknown", set_by="node-controller", reason="NodeStatusUnknown"),
                journal([X509_LINE, LEASE_LINE, UPDATE_LEASE]),
                ob("node.apiserver", BAD, "API server unreachable from the node (000, "
                                          "timeout): the partition signature",
                   {"http_code": "000"}),
                ob("api.lease", BAD, "lease last renewed 600 s ago", {"renew_age": 600.0}))
    d = diagnose(obs)
    v = d.verdict()
    assert v.verdict == "apiserver_unreachable"
    assert d.domains()["cert_expired"].status == "confirmed"  # the x509 line, explained
    assert v.actions == []  # no lab action heals a partition
    assert any("Do not restart kubelet blindly during an API server outage" in w for w in v.dont)
    assert any("partition signature" in e for e in d.domains()["apiserver_unreachable"].evidence)


def test_hung_crictl_beats_pleg():
    obs = with_(healthy_set(), *CASES["runtime_down"])
    d = diagnose(obs)
    assert d.domains()["pleg_runtime_slow"].status == "confirmed"
    assert d.verdict().verdict == "runtime_down"
    assert "restart-containerd" in d.verdict().actions


def test_pid_exhaustion_explains_a_runtime_that_cannot_fork():
    obs = with_(healthy_set(),
                node("False", message="container runtime is down", reason="KubeletNotReady",
                     PIDPressure="True"),
                journal(['level=error msg="RunPodSandbox failed" error="fork/exec /usr/bin/'
                         'containerd-shim-runc-v2: resource temporarily unavailable"'],
                        "containerd"),
                ob("node.crictl.ps", BAD, "crictl ps failed: the runtime socket does not answer",
                   raw="rpc error: code = Unavailable desc = connection error"))
    d = diagnose(obs)
    assert d.domains()["runtime_down"].status == "confirmed"
    assert d.verdict().verdict == "memory_pid_pressure"


def test_clock_beats_certificate():
    d = diagnose(CASES["clock_skew"])
    assert d.domains()["cert_expired"].status == "confirmed"
    assert d.verdict().verdict == "clock_skew"


def test_df_h_fine_does_not_rule_out_disk_without_df_i():
    d = diagnose([ob("node.df.space", OK, "space 50%")])
    assert d.domains()["disk_pressure"].status == "untested"
    assert "node.df.inodes" in d.next_probes()


def test_order_of_arrival_does_not_matter():
    obs = with_(healthy_set(), *CASES["apiserver_unreachable"], *CASES["cert_expired"][1:2])
    a = diagnose(obs).verdict().as_dict()
    b = diagnose(list(reversed(obs))).verdict().as_dict()
    assert a == b and a["verdict"] == "apiserver_unreachable"


def test_a_newer_observation_replaces_the_older():
    d = Diagnosis(NODE)
    d.add(ob("node.crictl.ps", HUNG, "crictl ps did not return in 10 s"))
    assert d.conclusion() == "runtime_down"
    d.add(ob("node.crictl.ps", OK, "crictl ps answered in 0.02 s"))
    assert d.domains()["runtime_down"].status == "untested"  # containerd unit not seen yet
    d.add(unit("containerd"))
    assert d.domains()["runtime_down"].status == "ruled_out"


# -- blast radius -----------------------------------------------------------------------------------
def test_blast_radius_note_when_notready_nodes_share_a_zone():
    sib = [{"name": f"node-{i:04d}", "zone": "us-east-1b" if i < 14 else "us-east-1a",
            "pool": "general", "os_image": "ami-2" if i < 14 else "ami-1",
            "ready": "False" if i < 12 else "True"} for i in range(30)]
    v = diagnose(CASES["cni_network"], siblings=sib).verdict()
    notes = " ".join(v.notes)
    assert "zone us-east-1b" in notes and "12 of 12 NotReady" in notes
    assert "os_image ami-2" in notes
    assert "pool general" in notes  # every NotReady node is in it (so is every node)
    assert "blast radius" in v.to_text() and "blast radius" in v.to_markdown()
    assert set(v.as_dict()) == set(KEYS)


def test_no_blast_radius_for_scattered_or_few_failures():
    assert blast_radius([{"name": "a", "zone": "z1", "ready": "False"},
                         {"name": "b", "zone": "z1", "ready": "False"}]) == []
    scattered = [{"name": f"n{i}", "zone": f"z{i}", "ready": "False"} for i in range(6)]
    assert blast_radius(scattered) == []


# -- the verdict -------------------------------------------------------------------------------------
def test_json_shape_matches_the_contract():
    v = diagnose(with_(healthy_set(), *CASES["disk_pressure"])).verdict()
    out = json.loads(v.to_json())
    assert list(out) == ["node", "verdict", "domains", "next_probes", "fix", "verify", "dont",
                         "actions"]
    assert out["node"] == NODE and out["verdict"] == "disk_pressure"
    assert [d["id"] for d in out["domains"]] == list(R.DOMAINS)
    for d in out["domains"]:
        assert set(d) == {"id", "status", "evidence"}
        assert d["status"] in ("confirmed", "suspected", "ruled_out", "untested")
        assert all(isinstance(e, str) for e in d["evidence"])
    for key in ("next_probes", "fix", "verify", "dont", "actions"):
        assert isinstance(out[key], list) and all(isinstance(x, str) for x in out[key])
    assert any("check inode usage with df -i" in w for w in out["dont"])
    assert set(out["actions"]) == {"prune-images", "vacuum-journal"}
    disk = next(d for d in out["domains"] if d["id"] == "disk_pressure")
    assert any("inodes 100%" in e for e in disk["evidence"])


def test_json_of_unknown_and_node_none():
    v = Diagnosis().verdict()
    out = json.loads(v.to_json())
    assert out["node"] is None and out["verdict"] == "unknown"
    assert out["next_probes"][0] == "api.node"  # the runbooks start with the Ready condition


def test_text_and_markdown_renderings():
    v = diagnose(CASES["runtime_down"]).verdict()
    text, md = v.to_text(), v.to_markdown()
    assert text.startswith(f"{NODE}: runtime_down")
    assert "crictl ps did not return in 10 s" in text and "restart-containerd" in text
    assert "check containerd first" in text
    assert md.startswith(f"# {NODE}: runtime_down")
    assert "| runtime_down | confirmed |" in md and "## Don't" in md


def test_every_action_is_a_lab_action_and_every_domain_has_a_leaf():
    known = {"restart-containerd", "approve-csr", "reapply-cni", "modprobe-vxlan",
             "prune-images", "vacuum-journal", "delete-pod", "drain", "sync-clock",
             "fix-cgroup-driver", "disable-swap"}
    assert set(R.LEAVES) == set(R.DOMAINS) == set(R.PRECEDENCE)
    for leaf in R.LEAVES.values():
        assert set(leaf.actions) <= known
        assert leaf.cause and leaf.fix and leaf.verify
    used = {a for leaf in R.LEAVES.values() for a in leaf.actions}
    assert used == known


def test_rules_are_data_in_runbook_order():
    ids = [r.id for r in R.RULES]
    assert len(ids) == len(set(ids))
    steps = ["ready", "kubelet", "healthz", "journal", "runtime", "pleg", "cert", "api",
             "pressure", "cni", "config", "clock"]
    seen = [r.step for r in R.RULES]
    assert [s for s in steps if s in seen] == list(dict.fromkeys(seen))
    probe_ids = {c.id for c in nc.CHECKS} | {"kubelet.healthz", "kubelet.metrics",
                                             "kubelet.configz", "kubelet.goroutines",
                                             "api.node", "api.lease", "api.events"}
    for r in R.RULES:
        assert r.domain in R.DOMAINS and r.effect in (R.CONFIRM, R.SUSPECT, R.RULE_OUT)
        assert set(r.probes) <= probe_ids, r.id


def test_real_log_strings_are_recognised():
    lines = {
        "pleg_runtime_slow": PLEG_LINE,
        "cert_expired": X509_LINE,
        "runtime_down": 'E1121 "failed to connect to containerd" err="connection refused"',
        "cni_network": CNI_LINE,
        "kubelet_config": 'E1121 "failed to run Kubelet: running with swap on is not supported"',
        "apiserver_unreachable": UPDATE_LEASE,
        "disk_pressure": 'W1121 eviction_manager.go:377] "Eviction manager: attempting to '
                         'reclaim" resourceName="ephemeral-storage"',
        "memory_pid_pressure": 'W1121 eviction_manager.go:377] "Eviction manager: attempting to '
                               'reclaim" resourceName="memory"',
    }
    for domain, line in lines.items():
        st = diagnose([journal([line])]).domains()[domain]
        assert st.status in ("confirmed", "suspected"), domain
        assert any(line[:40] in e for e in st.evidence), (domain, st.evidence)


def test_triage_imports_no_ui_or_lab():
    root = Path(__file__).resolve().parent.parent / "triage"
    for name in ("tree.py", "verdict.py", "rules.py"):
        tree = ast.parse((root / name).read_text())
        for n in ast.walk(tree):
            mods = [a.name for a in n.names] if isinstance(n, ast.Import) else \
                [n.module or ""] if isinstance(n, ast.ImportFrom) else []
            for m in mods:
                assert m.split(".")[0] not in ("textual", "tui", "lab"), (name, m)


# -- on the served lab -------------------------------------------------------------------------------
LAB_CASES = {
    "pleg-slow-io": "pleg_runtime_slow", "containerd-deadlock": "runtime_down",
    "runtime-dead": "runtime_down", "cert-expired": "cert_expired",
    "cni-binary-missing": "cni_network", "vxlan-missing": "cni_network",
    "inode-exhaustion": "disk_pressure", "disk-full": "disk_pressure",
    "kubelet-oom": "memory_pid_pressure", "too-many-pods": "memory_pid_pressure",
    "pid-exhaustion": "memory_pid_pressure", "api-partition": "apiserver_unreachable",
    "clock-skew": "clock_skew", "cgroup-driver-mismatch": "kubelet_config",
    "swap-on": "kubelet_config", "healthy": "healthy",
}


def test_node_probes_on_the_lab_reach_the_scenarios_domain(served_lab):
    from probes.kube import Kube
    from probes.kubelet import KubeletClient
    from probes.node_probes import NodeProbes
    from probes.ssh import SshClient
    from tests.conftest import SCENARIO_NODES

    nodes = {name: SCENARIO_NODES.get(name, "node-0001") for name in LAB_CASES}

    async def run() -> dict[str, Verdict]:
        kube = Kube(str(served_lab.kubeconfig))
        out: dict[str, Verdict] = {}
        async with SshClient(ssh_config=served_lab.ssh_config) as ssh:
            async with KubeletClient(kube, nc.ssh_runner(ssh)) as kubelet:
                async def one(name: str, n: str) -> None:
                    d = Diagnosis(n)
                    await NodeProbes(kube, ssh, kubelet, n).run(on_observation=d.add)
                    out[name] = d.verdict()
                await asyncio.wait_for(asyncio.gather(*(one(k, v) for k, v in nodes.items())),
                                       90)
        return out

    verdicts = asyncio.run(run())
    for name, want in LAB_CASES.items():
        v = verdicts[name]
        assert v.verdict == want, (name, v.to_text())
        assert v.node == nodes[name]
        json.loads(v.to_json())
    assert "modprobe-vxlan" in verdicts["vxlan-missing"].actions
    assert "restart-containerd" in verdicts["containerd-deadlock"].actions

"""The decision tree (triage.rules, triage.tree, triage.verdict) on hand-built observations, and
on NodeProbes run against the served lab."""

from __future__ import annotations

import ast
import asyncio
import json
from pathlib import Path

import pytest

from probes import node_checks as nc
from probes.node_probes import NodeProbes
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
             'err="PLEG is not healthy: pleg was last seen active 4m27.012s ago; '
             'threshold is 3m0s"')
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
    assert states[domain].evidence and all(isinstance(e, str) and e
                                           for e in states[domain].evidence)
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


YET_TO_SUCCEED = "PLEG is not healthy: pleg has yet to be successful"


def test_suspicion_alone_is_unknown_not_a_guess():
    # a PLEG that has not relisted yet (kubelet start) is a suspicion, not a stale relist
    v = diagnose([node("False", message=YET_TO_SUCCEED, reason="KubeletNotReady"),
                  journal([PLEG_LINE.replace(PLEG_MSG, YET_TO_SUCCEED)])]).verdict()
    assert v.verdict == "unknown"
    pleg = next(d for d in v.domains if d["id"] == "pleg_runtime_slow")
    assert pleg["status"] == "suspected"
    # the runbook order: the runtime is tested next
    assert "node.crictl.ps" in v.next_probes
    assert v.next_probes.index("node.crictl.ps") < v.next_probes.index("node.ntp")


def test_a_stale_pleg_the_kubelet_reports_is_the_pleg_domain_until_a_cause_beneath_shows():
    d = diagnose([node("False", message=PLEG_MSG, reason="KubeletNotReady"), journal([PLEG_LINE])])
    assert d.conclusion() == "pleg_runtime_slow"
    d.add(ob("node.crictl.ps", HUNG, "crictl ps did not return in 10 s"))
    assert d.conclusion() == "runtime_down"


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
    # the stale relist is real (the kubelet says so), and the broken overlay explains it
    assert d.domains()["pleg_runtime_slow"].status == "confirmed"
    assert any("explained by cni_network" in n for n in d.notes())


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


# -- blast radius ----------------------------------------------------------------------------------
def test_blast_radius_note_when_notready_nodes_share_a_zone():
    sib = [{"name": f"node-{i:04d}", "zone": "us-east-1b" if i < 14 else "us-east-1a",
            "pool": "general", "os_image": "ami-2" if i < 14 else "ami-1",
            "ready": "False" if i < 12 else "True"} for i in range(30)]
    v = diagnose(CASES["cni_network"], siblings=sib).verdict()
    notes = " ".join(v.notes)
    assert "zone us-east-1b" in notes and "12 of 12 NotReady" in notes
    assert "os_image ami-2" in notes
    # every NotReady node is in pool general, but so is every node: it sets nothing apart
    assert "pool general" not in notes
    assert "blast radius" in v.to_text() and "blast radius" in v.to_markdown()
    assert list(v.as_dict())[:len(KEYS)] == list(KEYS)
    assert any("zone us-east-1b" in n for n in json.loads(v.to_json())["notes"])


def test_no_blast_radius_when_the_value_sets_nothing_apart():
    # half the fleet down, spread evenly over the zones: a zone is no common cause
    sib = [{"name": f"n{i}", "zone": f"z{i % 3}", "kernel": "5.15",
            "ready": "False" if i % 2 else "True"} for i in range(30)]
    assert blast_radius(sib) == []


def test_no_blast_radius_for_scattered_or_few_failures():
    assert blast_radius([{"name": "a", "zone": "z1", "ready": "False"},
                         {"name": "b", "zone": "z1", "ready": "False"}]) == []
    scattered = [{"name": f"n{i}", "zone": f"z{i}", "ready": "False"} for i in range(6)]
    assert blast_radius(scattered) == []


# -- the verdict -----------------------------------------------------------------------------------
def test_json_shape_matches_the_contract():
    v = diagnose(with_(healthy_set(), *CASES["disk_pressure"])).verdict()
    out = json.loads(v.to_json())
    assert list(out) == ["node", "verdict", "domains", "next_probes", "fix", "verify", "dont",
                         "actions", "leaf", "cause", "notes"]  # the contract, then extra keys
    assert out["node"] == NODE and out["verdict"] == "disk_pressure"
    assert out["leaf"] == "inodes" and "df -i" in out["cause"]
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
    probe_ids = {p.id for p in NodeProbes(None, None, None, "n", fleet=True).plan()}
    assert {c.id for c in nc.CHECKS} <= probe_ids
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


# -- on the served lab -----------------------------------------------------------------------------
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


# -- settled: the verdict is final before the slow probes finish -------------------------------
DEADLINE_LINE = ('E1121 10:10:56.666271 1937 generic.go:238] "GenericPLEG: Unable to retrieve '
                 'pods" err="rpc error: code = DeadlineExceeded desc = context deadline exceeded"')
SLOW = ("node.crictl.ps", "node.crictl.pods", "node.crictl.info", "node.pods")


def deadlock_fast() -> list[Observation]:
    """What a deadlocked runtime's node shows before crictl's 10 s run out."""
    base = [o for o in healthy_set() if o.probe not in SLOW]
    return with_(base, node("False", reason="KubeletNotReady",
                            message="[container runtime is down, " + PLEG_MSG + "]"),
                 journal([DEADLINE_LINE, PLEG_LINE]),
                 metrics(last_relist=660.0, breaches=["no PLEG relist for 11.0m"]))


def test_settled_when_nothing_outstanding_could_change_the_verdict():
    d = diagnose(deadlock_fast())
    assert d.settled()
    v = d.verdict()
    assert v.verdict == "runtime_down" and v.leaf == "hung"
    assert set(SLOW) <= set(v.next_probes)  # reported as still to come
    evidence = " ".join(next(x for x in v.domains if x["id"] == "runtime_down")["evidence"])
    assert "DeadlineExceeded" in evidence and "set by kubelet" in evidence


@pytest.mark.parametrize("missing", ["node.ntp", "node.apiserver", "node.cert.client",
                                     "node.journal.kubelet", "node.swap"])
def test_not_settled_while_an_earlier_domain_could_still_be_confirmed(missing):
    # clock, API, certificate and config come before the runtime in PRECEDENCE
    obs = [o for o in deadlock_fast() if o.probe != missing]
    d = diagnose(obs)
    if missing == "node.journal.kubelet":  # the journal also confirms; the node says down
        assert d.conclusion() == "runtime_down"
    assert not d.settled()
    d.add(next(o for o in deadlock_fast() if o.probe == missing))
    assert d.settled()


def test_not_settled_while_a_cause_that_explains_it_may_still_fire():
    # PID exhaustion explains a runtime that cannot fork: its journal is still to come
    obs = [o for o in deadlock_fast() if o.probe != "node.journal.containerd"]
    d = diagnose(obs + [ob("node.pods", OK, "11 pods")])
    assert d.conclusion() == "runtime_down" and not d.settled()
    d.add(journal(['level=error msg="RunPodSandbox failed" error="fork/exec /proc/self/exe: '
                   'resource temporarily unavailable: unknown"'], "containerd"))
    d.add(ob("node.pods", BAD, "pods over maxPods"))
    assert d.conclusion() == "memory_pid_pressure"


def test_not_settled_without_a_confirmed_domain_or_while_waiting_for_the_fleet():
    assert not diagnose(healthy_set()).settled()  # healthy is only said when all is in
    assert not diagnose([]).settled()
    d = diagnose(deadlock_fast(), wait_for=("api.nodes",))
    assert not d.settled()
    d.add(ob("api.nodes", OK, "3 nodes", {"nodes": []}))
    assert d.settled()


def test_not_settled_while_a_more_specific_leaf_may_come():
    obs = [o for o in CASES["cert_expired"]] + [o for o in healthy_set() if o.probe not in (
        "api.node", "node.journal.kubelet", "node.cert.client", "node.apiserver")]
    d = diagnose(obs)
    assert d.conclusion() == "cert_expired" and d.leaf() == "client_expired"
    assert not d.settled()  # api.csr may still say the rotation's CSR waits
    d.add(ob("api.csr", BAD, "1 CSR pending", {"pending": [{"name": "csr-x"}]}))
    assert d.leaf() == "pending_csr" and d.settled()


# -- finer leaves under the stable domain ids --------------------------------------------------
SOCKET_LINE = ('E1121 remote_runtime.go:633] "Status from runtime service failed" err="rpc error: '
               'code = Unavailable desc = connection error: desc = \\"transport: Error while '
               'dialing: dial unix /run/containerd/containerd.sock: connect: no such file or '
               'directory\\""')
REFUSED_LINE = SOCKET_LINE.replace("no such file or directory", "connection refused")
LEAF_CASES = {
    ("runtime_down", "hung"): [journal([DEADLINE_LINE])],
    ("runtime_down", "dead"): [journal([SOCKET_LINE]), unit("containerd", "failed", "failed")],
    ("runtime_down", "socket_missing"): [journal([SOCKET_LINE])],
    ("runtime_down", "dead "): [journal([REFUSED_LINE])],
    ("disk_pressure", "space"): [ob("node.df.space", BAD, "space 97%"),
                                 ob("node.df.inodes", OK, "inodes 10%")],
    ("disk_pressure", "inodes"): [ob("node.df.space", OK, "space 50%"),
                                  ob("node.df.inodes", BAD, "inodes 100%")],
    ("cert_expired", "client_expired"): [ob("node.cert.client", BAD, "expired",
                                            {"state": "expired"})],
    ("cert_expired", "serving"): [journal([
        'I1121 log.go:245] http: TLS handshake error from 10.0.0.5:51234: no serving '
        'certificate available for the kubelet'])],
    ("cert_expired", "pending_csr"): [
        node("Unknown", set_by="node-controller", reason="NodeStatusUnknown"),
        ob("node.cert.client", BAD, "expired", {"state": "expired"}),
        ob("api.csr", BAD, "1 CSR pending", {"pending": [{"name": "csr-8v9rh"}]})],
    ("cni_network", "binary_missing"): [ob("node.cni", BAD, "calico missing",
                                           {"missing": ["calico"], "binaries": ["bridge"],
                                            "configs": ["10-calico.conflist"]})],
    ("cni_network", "config_missing"): [ob("node.cni", BAD, "no config",
                                           {"missing": [], "binaries": ["calico"],
                                            "configs": []})],
    ("cni_network", "kernel_module"): [ob("node.kmod", BAD, "vxlan not loaded",
                                          {"missing": ["vxlan"]})],
}


@pytest.mark.parametrize("domain,leaf", sorted(LEAF_CASES), ids=lambda x: x.strip())
def test_finer_leaves(domain, leaf):
    d = diagnose([node("False", reason="KubeletNotReady")] + LEAF_CASES[(domain, leaf)])
    v = d.verdict()
    assert v.verdict == domain, v.to_text()
    assert v.leaf == leaf.strip()
    out = json.loads(v.to_json())
    assert out["verdict"] == domain and out["leaf"] == leaf.strip() and out["cause"]
    assert f"[{leaf.strip()}]" in v.to_text().splitlines()[0]
    assert f"`{leaf.strip()}`" in v.to_markdown()


def test_every_leaf_a_rule_names_is_described():
    for r in R.RULES:
        if r.leaf:
            assert r.leaf in dict(R.LEAF_CAUSES[r.domain]), r.id


def test_pending_csr_on_a_ready_node_keeps_it_healthy():
    d = diagnose(healthy_set() + [ob("api.csr", BAD, "1 CSR pending",
                                     {"pending": [{"name": "csr-1"}]})])
    assert d.conclusion() == "healthy" and d.verdict().leaf is None


# -- polarity of the Ready condition -----------------------------------------------------------
UNKNOWN = dict(ready="Unknown", set_by="node-controller", reason="NodeStatusUnknown",
               message="Kubelet stopped posting node status.")


def test_unknown_from_the_node_controller_points_at_partition_or_certificate_not_a_guess():
    d = diagnose([node(**UNKNOWN)])
    states = d.domains()
    assert states["apiserver_unreachable"].status == "suspected"
    assert states["cert_expired"].status == "suspected"
    assert "set by the node controller" in states["apiserver_unreachable"].evidence[0]
    assert "Kubelet stopped posting node status." in states["apiserver_unreachable"].evidence[0]
    assert d.conclusion() == "unknown"


def test_unknown_with_the_kubelet_running_and_its_api_calls_timing_out_is_a_partition():
    d = diagnose([node(**UNKNOWN), journal([LEASE_LINE]),
                  ob("node.kubelet.process", OK, "kubelet running", {"running": True})])
    assert d.conclusion() == "apiserver_unreachable" and d.leaf() == "partition"
    assert any("ready.unknown-api-calls-fail" == f[0] for f in d.fired())


def test_unknown_with_no_kubelet_process_suspects_the_kubelet_itself():
    d = diagnose([node(**UNKNOWN), ob("node.kubelet.process", BAD, "no kubelet",
                                      {"running": False})])
    assert d.domains()["kubelet_config"].status == "suspected"
    assert "ready.unknown-kubelet-down" in [f[0] for f in d.fired()]


def test_unknown_with_401s_is_certificate_not_partition():
    d = diagnose([node(**UNKNOWN), journal(['E1121 controller.go:145] "Failed to ensure lease '
                                            'exists, will retry" err="Unauthorized"'])])
    states = d.domains()
    assert states["cert_expired"].status == "confirmed" and d.leaf() == "unauthorized"
    assert states["apiserver_unreachable"].status == "suspected"  # only the polarity
    assert "ready.unknown-api-calls-fail" not in [f[0] for f in d.fired()]


def test_false_from_the_kubelet_is_first_hand():
    d = diagnose([node("False", reason="KubeletNotReady",
                       message="container runtime network not ready: NetworkReady=false "
                               "reason:NetworkPluginNotReady message:Network plugin returns "
                               "error: cni plugin not initialized")])
    states = d.domains()
    assert d.conclusion() == "cni_network"
    assert states["apiserver_unreachable"].status == "ruled_out"
    assert states["cert_expired"].status == "ruled_out"
    stale = diagnose([node("False", set_by="kubelet", reason="KubeletNotReady",
                           message="container runtime is down")])
    assert stale.conclusion() == "runtime_down"
    # the same words in a status the kubelet stopped refreshing are not first-hand
    old = ob("api.node", BAD, "Ready=False", dict(node("False", message="container runtime is "
                                                       "down").data, heartbeat_age=900.0))
    assert diagnose([old]).domains()["runtime_down"].status == "suspected"


def test_fleet_observation_feeds_the_blast_radius():
    nodes = [{"name": f"node-{i:04d}", "zone": "us-east-1b" if i < 12 else "us-east-1a",
              "ready": "False" if i < 12 else "True"} for i in range(40)]
    d = diagnose(CASES["cni_network"] + [ob("api.nodes", BAD, "40 nodes", {"nodes": nodes})])
    v = d.verdict()
    assert any("zone us-east-1b" in n for n in v.notes)
    assert "blast radius" in v.to_markdown() and "blast radius" in v.to_json()


def test_unknown_and_healthy_still_hold_with_the_new_rules():
    info = journal(['I1121 10:00:00.000000 1 kubelet.go:100] "Attempting to delete unused '
                    'containers"', 'I1121 oom_score_adj set for kubelet'])
    assert diagnose([node("False", reason="KubeletNotReady"), info]).conclusion() == "unknown"
    assert diagnose(with_(healthy_set(), info)).conclusion() == "healthy"


def test_run_until_settled_on_the_lab_stops_before_the_hung_crictl(served_lab):
    from probes.kube import Kube
    from probes.kubelet import KubeletClient
    from probes.node_probes import NodeProbes
    from probes.ssh import SshClient
    from tests.conftest import SCENARIO_NODES

    name = SCENARIO_NODES["containerd-deadlock"]

    async def run() -> tuple[Diagnosis, list[Observation], list[str]]:
        kube = Kube(str(served_lab.kubeconfig))
        async with SshClient(ssh_config=served_lab.ssh_config) as ssh:
            async with KubeletClient(kube, nc.ssh_runner(ssh)) as kubelet:
                probes = NodeProbes(kube, ssh, kubelet, name, fleet=True)
                d = Diagnosis(name, wait_for=("api.nodes",))
                got = await asyncio.wait_for(probes.run(on_observation=d.add,
                                                        until=d.settled), 60)
                return d, got, [p.id for p in probes.plan()]

    d, got, planned = asyncio.run(run())
    assert d.settled()
    v = d.verdict()
    assert v.verdict == "runtime_down" and v.leaf == "hung", v.to_text()
    assert "api.nodes" in d.observations  # wait_for: the blast radius is not skipped
    assert "node.crictl.ps" not in d.observations  # a 10 s hang; the verdict came long before
    missing = set(planned) - {o.probe for o in got}
    read_by_rules = {p for r in R.RULES for p in r.probes}
    assert "node.crictl.ps" in missing and (missing & read_by_rules) <= set(v.next_probes)


def test_pending_csr_probe_on_the_lab(served_lab):
    from probes.kube import Kube
    from probes.node_probes import NodeProbes
    from tests.conftest import SCENARIO_NODES

    kube = Kube(str(served_lab.kubeconfig))

    async def csr(node_name: str) -> Observation:
        obs = await NodeProbes(kube, None, None, node_name, fleet=True).run()
        return next(o for o in obs if o.probe == "api.csr")

    expired = asyncio.run(csr(SCENARIO_NODES["cert-expired"]))
    assert expired.status is BAD and expired.data["pending"], expired.summary
    assert expired.data["pending"][0]["name"].startswith("csr-")
    assert asyncio.run(csr("node-0001")).status is OK


def test_blast_radius_from_one_list_call_on_a_zone_wide_failure(fresh_lab):
    from probes.kube import Kube
    from probes.node_probes import NodeProbes

    lab = fresh_lab("--nodes", "30", "--scenario", "vxlan-missing", "--seed", "3")
    kube = Kube(str(lab.kubeconfig))
    down = [r for r in kube.list_nodes() if r.ready != "True"]
    assert len(down) >= 3, [(r.name, r.zone) for r in down]
    zone = down[0].zone

    d = Diagnosis(down[0].name, wait_for=("api.nodes",))
    asyncio.run(NodeProbes(kube, None, None, down[0].name, fleet=True).run(on_observation=d.add))
    fleet = d.observations["api.nodes"]
    assert fleet.status is BAD and len(fleet.data["nodes"]) == 30
    v = d.verdict()
    out = json.loads(v.to_json())
    assert any(f"zone {zone}" in n and "blast radius" in n for n in out["notes"]), out["notes"]
    assert "blast radius" in v.to_markdown() and "blast radius" in v.to_text()


def test_every_action_the_tree_names_exists_and_each_leaf_leads_with_its_fix():
    from lab.scenarios import SCENARIOS
    from triage.actions import ACTIONS
    from triage.rules import LEAF_ACTIONS, LEAF_CAUSES, LEAVES

    named = {a for leaf in LEAVES.values() for a in leaf.actions}
    named |= {a for acts in LEAF_ACTIONS.values() for a in acts}
    assert named <= set(ACTIONS)
    for (domain, leaf), _acts in LEAF_ACTIONS.items():
        assert leaf in dict(LEAF_CAUSES[domain]), (domain, leaf)
    healing = {s.action for s in SCENARIOS.values() if s.action}
    assert healing <= set(ACTIONS)

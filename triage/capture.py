"""Capture a node's evidence: every command and object of the bundle, in parallel, each with
its own time limit, then written and verified by triage.evidence.

    bundle = await capture_node(kube, ssh, kubelet, "node-0004", internal_ip="10.0.1.4",
                                verdict=verdict.as_dict())

A command that does not finish in its limit is itself evidence (a `crictl ps` that hangs says
the runtime is hung): its file holds a first line starting with HANG_MARK and whatever it
printed, its manifest entry says `timed_out: true`, and `problems` says what hung. Nothing waits
beyond its limit. Without SSH, the journals come from the kubelet's node log query and the
node-shell files are listed as problems.

Files: kubelet.log, runtime.log, dmesg.log, crictl-ps.txt, crictl-pods.txt, crictl-info.json,
df-h.txt, df-i.txt, lsmod.txt, openssl-dates.txt, systemctl-status-kubelet.txt,
systemctl-status-containerd.txt, ps-kubelet.txt, clock.txt, apiserver-from-node.txt (over SSH);
metrics.txt, goroutines.txt (the kubelet, by the API proxy or SSH); node.json, events.json,
lease.json, describe-node.txt (the API server); verdict.json when given. The node-shell commands
are the ones probes.node_checks runs, so `nodewb analyze` reads a bundle as `nodewb diagnose`
reads the live node. Each file's manifest entry says how it was collected: command or path,
exit status, timed_out, when it started and how long it took.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from probes import node_checks as nc
from triage.describe import describe_node
from triage.evidence import Bundle, EvidenceError, write_bundle

__all__ = ["capture_node", "capture_session", "collect", "Item", "plan", "hang_note",
           "HANG_MARK", "JOURNAL_LINES", "COMMAND_TIMEOUT", "GRACE"]

HANG_MARK = "nodewb-capture: timed out:"
JOURNAL_LINES = 2000
COMMAND_TIMEOUT = 10.0  # seconds a node command may take (the probes' limit)
HTTP_TIMEOUT = 20.0
API_TIMEOUT = 10.0
GRACE = 5.0  # beyond an item's own limit: an SSH connection or a proxy may have to be opened
STDERR_KEPT = 8000
CONCURRENCY = 8


@dataclass(slots=True)
class Item:
    """One file of the bundle as it was collected."""

    name: str
    content: bytes | str | None = None  # None: nothing to write (see problem)
    detail: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None
    obj: Any = None  # the parsed API object, for describe-node.txt


def _unit_command(unit: str) -> str:
    u = shlex.quote(unit)
    return (f"systemctl show -p {nc.SYSTEMD_PROPS} {u}; echo {shlex.quote(nc.SECTION + 'status')}; "
            f"systemctl status {u} --no-pager -l -n 20; true")


def plan(endpoint: str = nc.DEFAULT_RUNTIME_ENDPOINT,
         timeout: float = COMMAND_TIMEOUT) -> list[tuple[str, str, float]]:
    """The node-shell files: (file name, command, time limit). Journals get half as long again
    as the other commands."""
    ep = shlex.quote(endpoint)
    cmd, journal = timeout, timeout * 1.5
    modules = " ".join(shlex.quote(f"/sys/module/{m}") for m in nc.MODULES)
    df_paths = " ".join(shlex.quote(p) for p in nc.DF_PATHS)
    return [
        ("kubelet.log", f"journalctl -u kubelet -n {JOURNAL_LINES} --no-pager", journal),
        ("runtime.log", f"journalctl -u containerd -n {JOURNAL_LINES} --no-pager",
         journal),
        ("dmesg.log", "dmesg -T 2>/dev/null || journalctl -k --no-pager", cmd),
        ("crictl-ps.txt", f"crictl --runtime-endpoint {ep} ps", cmd),
        ("crictl-pods.txt", f"crictl --runtime-endpoint {ep} pods", cmd),
        ("crictl-info.json", f"crictl --runtime-endpoint {ep} info", cmd),
        ("df-h.txt", f"df -h {df_paths}", cmd),
        ("df-i.txt", f"df -i {df_paths}", cmd),
        ("lsmod.txt", f"lsmod; echo {shlex.quote(nc.SECTION + 'sys')}; ls -d {modules} "
                      f"2>/dev/null; true", cmd),
        ("openssl-dates.txt", f"date -u +%s; openssl x509 -in {shlex.quote(nc.CLIENT_CERT)} "
                              f"-noout -dates -subject -issuer -serial", cmd),
        ("systemctl-status-kubelet.txt", _unit_command("kubelet"), cmd),
        ("systemctl-status-containerd.txt", _unit_command("containerd"), cmd),
        ("ps-kubelet.txt", "ps -o rss=,pcpu= -C kubelet", cmd),
        ("clock.txt", f"date -u +%s; timedatectl show -p NTPSynchronized --value 2>/dev/null; "
                      f"echo {shlex.quote(nc.SECTION + 'status')}; timedatectl 2>/dev/null; true",
         cmd),
        ("apiserver-from-node.txt",
         f"s=$(grep -E '^[[:space:]]*server:' {shlex.quote(nc.KUBELET_CONF)} "
         f"| awk '{{print $2}}'); echo \"server: $s\"; "
         f"curl -k -s -m 5 -o /dev/null -w '%{{http_code}}\\n' \"$s/healthz\"", cmd),
    ]


def hang_note(command: str, limit: float, printed: int, why: str = "") -> str:
    return (f"{HANG_MARK} `{command}` did not finish in {limit:g} s; it was stopped after "
            f"printing {printed} bytes{' (' + why + ')' if why else ''}. A command that hangs "
            f"is evidence.\n")


# -- one item of each kind ------------------------------------------------------------------------
async def _ssh_item(ssh: Any, node: str, name: str, command: str, limit: float) -> Item:
    started = time.time()
    t0 = time.monotonic()
    detail: dict[str, Any] = {"source": "ssh", "command": command, "started": started}
    try:
        r = await asyncio.wait_for(ssh.run(node, command, limit), limit + GRACE)
    except TimeoutError:
        # the SSH session did not even report back: the transport hung, not the command
        detail.update(ssh_timed_out=True, seconds=round(time.monotonic() - t0, 3))
        return Item(name, None, detail, f"{name}: no answer over SSH in {limit + GRACE:g} s "
                                        f"(the session did not open or did not report)")
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        detail.update(error=f"{type(exc).__name__}: {exc}")
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return Item(name, None, detail, f"{name}: could not run it over SSH ({first})")
    detail.update(exit_status=r.exit_status, timed_out=r.timed_out,
                  seconds=round(r.duration, 3))
    if r.truncated:
        detail["truncated"] = True
    if r.timed_out:
        printed = len(r.stdout.encode()) + len(r.stderr.encode())
        text = hang_note(command, limit, printed) + r.stdout + r.stderr
        return Item(name, text, detail,
                    f"{name}: hung after {limit:g} s (`{command}` did not finish; recorded)")
    if r.exit_status == 0:
        if r.stderr.strip():
            detail["stderr"] = r.stderr[-STDERR_KEPT:]
        return Item(name, r.stdout, detail)
    # a command that failed printed its reason: that is the evidence
    text = r.stdout + (("\n" if r.stdout and not r.stdout.endswith("\n") else "") + r.stderr
                       if r.stderr else "")
    return Item(name, text, detail)


async def _kubelet_item(kubelet: Any, node: str, name: str, path: str, limit: float,
                        accept: str = "*/*") -> Item:
    started = time.time()
    t0 = time.monotonic()
    detail: dict[str, Any] = {"source": "kubelet", "path": path, "started": started}
    try:
        f, attempts = await asyncio.wait_for(
            kubelet.fetch_auto(node, path, timeout=limit, accept=accept), 2 * limit + GRACE)
    except TimeoutError:
        detail.update(timed_out=True, seconds=round(time.monotonic() - t0, 3))
        return Item(name, hang_note(f"GET {path}", 2 * limit + GRACE, 0, "kubelet"), detail,
                    f"{name}: the kubelet did not answer {path} in {2 * limit + GRACE:g} s "
                    f"(recorded as a hang)")
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        return Item(name, None, detail, f"{name}: {type(exc).__name__}: {exc}")
    detail.update(via=f.via, url=f.url, http_status=f.status, seconds=round(f.duration, 3),
                  timed_out=f.timed_out)
    if attempts:
        detail["attempts"] = [a.attempt() for a in attempts]
    if f.timed_out:
        return Item(name, hang_note(f"GET {path} via {f.via}", limit, len(f.body), f.error),
                    detail, f"{name}: the kubelet did not answer {path} via {f.via} ({f.error})")
    if f.status == 200 and not f.error and not f.proxy_error:
        return Item(name, f.body, detail)
    why = f.error or f.proxy_error or f"HTTP {f.status}"
    detail["error"] = why
    return Item(name, None, detail, f"{name}: {path} via {f.via} failed: {why[:300]}")


async def _kubelet_logs_item(kubelet: Any, node: str, name: str, query: str,
                             limit: float) -> Item:
    """A journal through the kubelet's node log query (no SSH)."""
    path = f"/logs/?query={quote(query)}&tailLines={JOURNAL_LINES}"
    item = await _kubelet_item(kubelet, node, name, path, limit)
    item.detail["source"] = "kubelet node log query"
    if isinstance(item.content, bytes) and item.content.lstrip().lower().startswith(
            (b"<!doctype", b"<pre", b"<html")):
        return Item(name, None, item.detail, f"{name}: the node log query is off (the kubelet "
                                             f"answered with the /var/log listing)")
    return item


async def _api_item(kube: Any, name: str | None, path: str, params: dict | None,
                    doing: str, *, missing_is_answer: bool = False) -> Item:
    started = time.time()
    t0 = time.monotonic()
    label = name or path
    detail: dict[str, Any] = {"source": "apiserver", "path": path, "started": started}
    if params:
        detail["params"] = params
    try:
        obj = await asyncio.wait_for(
            asyncio.to_thread(kube.get_json, path, params, timeout=(5.0, API_TIMEOUT),
                              doing=doing), API_TIMEOUT + GRACE)
    except TimeoutError:
        detail.update(timed_out=True, seconds=round(time.monotonic() - t0, 3))
        return Item(label, None, detail, f"{label}: the API server did not answer in "
                                         f"{API_TIMEOUT + GRACE:g} s")
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        detail["seconds"] = round(time.monotonic() - t0, 3)
        if getattr(exc, "status", 0) == 404 and missing_is_answer and name is not None:
            # "not found" is an answer: kept as the API's Status object, so a node that never
            # created its lease (or was deleted) is evidence, not a gap
            detail["http_status"] = 404
            status = {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                      "reason": "NotFound", "code": 404, "message": first[:300]}
            return Item(label, json.dumps(status, indent=2) + "\n", detail, None, status)
        return Item(label, None, detail, f"{label}: {doing} failed: {first[:300]}")
    detail["seconds"] = round(time.monotonic() - t0, 3)
    text = json.dumps(obj, indent=2) + "\n"
    return Item(label, text, detail, None, obj)


# -- all of them ----------------------------------------------------------------------------------
async def collect(kube: Any | None, ssh: Any | None, kubelet: Any | None, node: str, *,
                  clock: Callable[[], float] = time.time,
                  endpoint: str = nc.DEFAULT_RUNTIME_ENDPOINT,
                  timeout: float = COMMAND_TIMEOUT) -> list[Item]:
    """Every item, in parallel (at most CONCURRENCY node commands at once). `timeout` is the
    limit of one node command; the kubelet's endpoints get max(timeout, HTTP_TIMEOUT)."""
    sem = asyncio.Semaphore(CONCURRENCY)
    tasks: list[Awaitable[Item]] = []
    skipped: list[Item] = []

    async def bounded(coro: Awaitable[Item]) -> Item:
        async with sem:
            return await coro

    shell = plan(endpoint, timeout)
    http = max(timeout, HTTP_TIMEOUT)
    if ssh is not None:
        for name, command, limit in shell:
            tasks.append(bounded(_ssh_item(ssh, node, name, command, limit)))
    else:
        for name, command, _ in shell:
            if name in ("kubelet.log", "runtime.log") and kubelet is not None:
                continue
            skipped.append(Item(name, None, {"command": command},
                                f"{name}: not collected (no SSH to the node configured)"))
        if kubelet is not None:
            tasks.append(_kubelet_logs_item(kubelet, node, "kubelet.log", "kubelet", http))
            tasks.append(_kubelet_logs_item(kubelet, node, "runtime.log", "containerd", http))
    if kubelet is not None:
        tasks.append(_kubelet_item(kubelet, node, "metrics.txt", "/metrics", http,
                                   "text/plain;version=0.0.4"))
        tasks.append(_kubelet_item(kubelet, node, "goroutines.txt",
                                   "/debug/pprof/goroutine?debug=1", http))
    else:
        for name in ("metrics.txt", "goroutines.txt"):
            skipped.append(Item(name, None, {}, f"{name}: not collected (no kubelet client)"))
    api: list[Awaitable[Item]] = []
    if kube is not None:
        q = quote(node, safe="")
        api = [
            _api_item(kube, "node.json", f"/api/v1/nodes/{q}", None, f"get node {node}"),
            _api_item(kube, "events.json", "/api/v1/events",
                      {"fieldSelector": f"involvedObject.kind=Node,involvedObject.name={node}"},
                      f"list events of {node}"),
            _api_item(kube, None, "/api/v1/pods", {"fieldSelector": f"spec.nodeName={node}"},
                      f"list pods on {node}"),
            _api_item(kube, "lease.json", f"/apis/coordination.k8s.io/v1/namespaces/"
                                          f"kube-node-lease/leases/{q}", None,
                      f"get the lease of {node}", missing_is_answer=True),
        ]
    else:
        for name in ("node.json", "events.json", "describe-node.txt"):
            skipped.append(Item(name, None, {}, f"{name}: not collected (no API server)"))
    results = await asyncio.gather(*tasks, *api)
    items = list(results[:len(tasks)])
    if kube is not None:
        node_item, events_item, pods_item, lease_item = results[len(tasks):]
        items += [node_item, events_item, lease_item]
        if node_item.obj is not None:
            events = (events_item.obj or {}).get("items") if events_item.obj else None
            pods = (pods_item.obj or {}).get("items") if pods_item.obj else None
            lease = lease_item.obj if (lease_item.obj or {}).get("kind") != "Status" else None
            text = describe_node(node_item.obj, events=events, pods=pods, lease=lease,
                                 now=clock())
            notes = [i.problem for i in (events_item, pods_item, lease_item) if i.problem]
            if notes:
                text += "\nNot available when this was written:\n" + "".join(
                    f"  {n}\n" for n in notes)
            items.append(Item("describe-node.txt", text, {"source": "apiserver",
                                                          "built_from": "node, lease, events, "
                                                                        "pods"}))
        else:
            items.append(Item("describe-node.txt", None, {},
                              "describe-node.txt: not written (the node object could not be "
                              "read)"))
        if pods_item.problem:
            items.append(Item(pods_item.name, None, pods_item.detail, pods_item.problem))
    return items + skipped


async def capture_node(kube: Any | None, ssh: Any | None, kubelet: Any | None, node: str, *,
                       internal_ip: str | None = None, out: Any = None,
                       verdict: Any = None, clock: Callable[[], float] = time.time,
                       tool_version: str | None = None, timeout: float = COMMAND_TIMEOUT,
                       endpoint: str = nc.DEFAULT_RUNTIME_ENDPOINT) -> Bundle:
    """Collect everything, write the bundle (redacted, atomic, 0600) and verify it. `timeout`
    is the limit of one node command (a hang is recorded when it passes). Raises
    triage.evidence.EvidenceError when no verified bundle could be written."""
    if internal_ip:
        for client in (ssh, kubelet):
            if client is not None and isinstance(getattr(client, "addresses", None), dict):
                client.addresses.setdefault(node, internal_ip)
    started = clock()
    items = await collect(kube, ssh, kubelet, node, clock=clock, endpoint=endpoint,
                          timeout=timeout)
    finished = clock()
    files: dict[str, bytes | str] = {}
    details: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for item in items:
        if item.problem:
            problems.append(item.problem)
        if item.content is not None and item.name not in files:
            files[item.name] = item.content
            details[item.name] = item.detail
    if not files:
        raise EvidenceError(f"nothing could be collected from {node}: "
                            + ("; ".join(problems[:3]) or "no source configured"))
    if verdict is not None and hasattr(verdict, "as_dict"):
        verdict = verdict.as_dict()
    return await asyncio.to_thread(
        write_bundle, files, node=node, captured_at=started, out=out, tool_version=tool_version,
        verdict=verdict, problems=problems, details=details, finished_at=finished)


async def capture_session(session: Any, **kw: Any) -> Bundle:
    """capture_node for anything with .kube, .ssh, .kubelet, .node and .internal_ip (the CLI's
    and the TUI's node sessions)."""
    return await capture_node(session.kube, session.ssh, session.kubelet, session.node,
                              internal_ip=getattr(session, "internal_ip", None), **kw)

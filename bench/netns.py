"""Simulated hosts on this machine: network namespaces joined by veth pairs to one bridge.

:func:`build` makes ``count`` namespaces, each with ``lo`` up and one veth end ``eth-h<i>`` carrying
``10.213.77.<i+1>/24`` (a private subnet unlikely to clash with anything here); the other ends hang
on a bridge in the root namespace. Every name carries this process's id, so runs side by side do not
meet. :func:`teardown` kills every process left in the namespaces and deletes them (the veth pairs go
with them) and the bridge; its caller runs it on every ending (a ``finally``, a test's finalizer) and,
should the process end past those, ``atexit`` runs it. :class:`NetnsUnavailable` says why namespaces
cannot be made here (not root, no ``CAP_NET_ADMIN``, no ``ip``): ``bench scale --simulate-hosts`` makes
its rows ``skipped`` with it, the tests' fixture (``tests/netns.py``) skips with it.

Used by ``python -m bench scale --simulate-hosts N`` and by ``tests/test_multihost.py``.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field

SUBNET = "10.213.77"
PREFIX = f"lrh{os.getpid() % 100000}"  # namespaces and links of this process: lrh<pid>-<i>, lrh<pid>b


class NetnsUnavailable(RuntimeError):
    """Namespaces cannot be made here; the message says why (the fixture skips with it)."""


@dataclass
class Hosts:
    names: list[str]  # namespace names, one per simulated host
    addrs: list[str]  # each host's address on SUBNET
    ifnames: list[str]  # each host's interface inside its namespace
    outer: list[str]  # each veth's other end, in the root namespace (``ip link set ... down`` cuts a host off)
    bridge: str
    removed: bool = field(default=False)

    def cmd(self, i: int, argv: list[str]) -> list[str]:
        """``argv`` run inside host ``i``."""
        return ["ip", "netns", "exec", self.names[i], *argv]

    def pids(self, i: int) -> list[int]:
        out = subprocess.run(["ip", "netns", "pids", self.names[i]], capture_output=True, text=True, check=False).stdout
        return [int(p) for p in out.split()]

    def kill_all(self, i: int, sig: int = signal.SIGKILL) -> None:
        for pid in self.pids(i):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass


def _ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if proc.returncode:
        raise NetnsUnavailable(f"`ip {' '.join(args)}` failed: {proc.stderr.strip() or proc.returncode}")


def ours() -> list[str]:
    """The namespaces of this process that exist now."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(PREFIX + "-")]


def build(count: int) -> Hosts:
    if shutil.which("ip") is None:
        raise NetnsUnavailable("no `ip` command (iproute2)")
    hosts = Hosts([f"{PREFIX}-{i}" for i in range(count)], [f"{SUBNET}.{i + 1}" for i in range(count)],
                  [f"eth-h{i}" for i in range(count)], [f"{PREFIX}v{i}" for i in range(count)], f"{PREFIX}b")
    atexit.register(teardown, hosts)
    try:
        _ip("netns", "add", hosts.names[0])
    except NetnsUnavailable as exc:
        raise NetnsUnavailable(f"cannot create network namespaces (needs root or CAP_NET_ADMIN): {exc}") from None
    try:
        _ip("link", "add", hosts.bridge, "type", "bridge")
        _ip("link", "set", hosts.bridge, "up")
        for i, (ns, ifname, outer) in enumerate(zip(hosts.names, hosts.ifnames, hosts.outer, strict=True)):
            if i:
                _ip("netns", "add", ns)
            _ip("link", "add", outer, "type", "veth", "peer", "name", ifname, "netns", ns)
            _ip("link", "set", outer, "master", hosts.bridge)
            _ip("link", "set", outer, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "addr", "add", f"{hosts.addrs[i]}/24", "dev", ifname)
            _ip("-n", ns, "link", "set", ifname, "up")
    except BaseException:
        teardown(hosts)
        raise
    return hosts


def teardown(hosts: Hosts) -> None:
    """Kill what runs in the namespaces, delete them and the bridge (idempotent)."""
    if hosts.removed:
        return
    hosts.removed = True
    for i in range(len(hosts.names)):
        hosts.kill_all(i)
    deadline = time.monotonic() + 5
    while any(hosts.pids(i) for i in range(len(hosts.names))) and time.monotonic() < deadline:
        time.sleep(0.05)
    for ns, outer in zip(hosts.names, hosts.outer, strict=True):
        subprocess.run(["ip", "link", "del", outer], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
    subprocess.run(["ip", "link", "del", hosts.bridge], capture_output=True, check=False)


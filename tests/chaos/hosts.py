"""Several hosts on one machine, for what crosses a network: network namespaces joined by
veth pairs to one bridge (Debian's iproute2; needs root), each host with its own address.

The machine's own namespace reaches every host through the bridge's address. Every
process a host runs is started here in its own process group; `down` kills those groups,
then removes the namespaces, the veth pairs and the bridge, bounded in time.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.groups import signal_group, stop_groups


@dataclass(frozen=True)
class Host:
    name: str  # the namespace
    address: str


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@dataclass
class HostBed:
    """`n` hosts on 10.77.<net>.2 ... (the bridge is .1); `net` keeps two beds apart."""

    n: int
    net: int = field(default_factory=lambda: 20 + os.getpid() % 200)
    hosts: list[Host] = field(default_factory=list)
    groups: dict[int, Host] = field(default_factory=dict)  # process group -> its host

    @property
    def bridge(self) -> str:
        return f"frbr{self.net}"

    def up(self) -> list[Host]:
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"10.77.{self.net}.1/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for i in range(self.n):
            host = Host(f"fr{self.net}h{i}", f"10.77.{self.net}.{i + 2}")
            self.hosts.append(host)
            outside, inside = f"fr{self.net}v{i}", f"fr{self.net}e{i}"
            _ip("netns", "add", host.name)
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            _ip("link", "set", inside, "netns", host.name)
            _ip("link", "set", outside, "master", self.bridge, "up")
            for args in (
                ("addr", "add", f"{host.address}/24", "dev", inside),
                ("link", "set", inside, "up"),
                ("link", "set", "lo", "up"),
            ):
                _ip("netns", "exec", host.name, "ip", *args)
        return self.hosts

    def spawn(
        self, host: Host, argv: Sequence[str], env: dict[str, str], log: Path, cwd: Path
    ) -> subprocess.Popen[bytes]:
        """Start `argv` on `host` in a new process group (`ip netns exec` becomes it)."""
        with log.open("ab") as out:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", host.name, *argv],
                env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.groups[proc.pid] = host
        return proc

    def run(
        self, host: Host, argv: Sequence[str], env: dict[str, str], cwd: Path, timeout_s: float
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` on `host` to its end (bounded), returning its output."""
        return subprocess.run(
            ["ip", "netns", "exec", host.name, *argv],
            env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout_s,
        )  # fmt: skip

    def kill(self, host: Host) -> list[int]:
        """SIGKILL every process group started on `host`, then every process left in its
        namespace (a host that dies at once: what Ray started in sessions of its own too)."""
        killed = [g for g, h in self.groups.items() if h == host]
        for group in killed:
            signal_group(group, signal.SIGKILL)
        self._kill_namespace(host)
        return killed

    def _kill_namespace(self, host: Host) -> None:
        """SIGKILL whatever still runs in `host`'s namespace: only what we started runs there."""
        pids = subprocess.run(
            ["ip", "netns", "pids", host.name], capture_output=True, text=True, timeout=10
        ).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)

    def cut(self, host: Host) -> None:
        """Take `host`'s port off the bridge, its processes left running: packets to and
        from it are dropped, with no reset and no FIN, as its peers see a partition or a
        host that lost power (unlike `kill`: the kernel of a killed process resets its
        connections). The kernel here has no netem; a port that is down drops as well."""
        _ip("link", "set", f"fr{self.net}v{self.hosts.index(host)}", "down")

    def restore(self, host: Host) -> None:
        """Undo `cut`: packets flow again."""
        _ip("link", "set", f"fr{self.net}v{self.hosts.index(host)}", "up")

    def down(self, grace_s: float = 10.0) -> None:
        stop_groups(self.groups, grace_s)
        for host in self.hosts:
            self._kill_namespace(host)  # e.g. a haproxy Serve started in a session of its own
            subprocess.run(["ip", "netns", "del", host.name], capture_output=True, timeout=10)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, timeout=10)

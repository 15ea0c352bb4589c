"""The lab network: a hub namespace with two bridges (internal and external, as the seeds'
controllers have), one namespace per node, and guarded links from the root namespace.

The one rule (LAB-NOTES.md): no lab address may ever leave the machine. So, before any lab
address exists, the root namespace gets ``unreachable <subnet>/24``; the lab then gives the
root namespace its own veth into each bridge with a *more specific* connected route
(``<subnet>.0/25`` internal, ``<subnet>.128/26`` external), so the CLI and a client in the root
namespace reach the nodes, while every other address of the /24 fails locally. Node
namespaces have no default route.

Internal network (``br0``, the nodes' ``eth0``, ``<subnet>.0/25``): nodes ``.11, .12, ...``,
the internal VIP ``.100``, the root link ``.126``. External network (``br1``, ``eth1``,
``<subnet>.128/25``): nodes ``.139, .140, ...``, the external VIP ``.150``, the root link
``.190``.
Teardown removes only what this lab created: its namespaces (their veths go with them), its
routes and its ``/etc/netns/<ns>`` folders.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from hactl.errors import HactlError
from hactl.lab import registry


class LabError(HactlError):
    """The lab cannot be built or torn down safely."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"lab: {detail}")
        self.detail = detail


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``ip ARGS`` (bounded); raises LabError with ip's message when ``check``."""
    try:
        res = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabError(f"ip {' '.join(args)}: {exc}") from None
    if check and res.returncode != 0:
        raise LabError(f"ip {' '.join(args)}: {res.stderr.strip() or res.returncode}")
    return res


@dataclass(frozen=True, slots=True)
class LabNet:
    """Names and addresses of one lab network (``prefix`` keeps two labs apart)."""

    prefix: str  # e.g. "hlab" -> namespaces hlab-hub, hlab-ctl1 ...
    subnet: str  # "10.99.0" (a /24 under 10.99.0.0/16)
    nodes: tuple[str, ...]

    @property
    def hub(self) -> str:
        """The hub namespace holding the bridge."""
        return f"{self.prefix}-hub"

    def ns(self, node: str) -> str:
        """The namespace of ``node``."""
        return f"{self.prefix}-{node}"

    def address(self, node: str) -> str:
        """``node``'s address (.11, .12, ...)."""
        return f"{self.subnet}.{11 + self.nodes.index(node)}"

    def external_address(self, node: str) -> str:
        """``node``'s address on the external network (.139, .140, ...)."""
        return f"{self.subnet}.{139 + self.nodes.index(node)}"

    def vip(self, index: int) -> str:
        """VIP 0 is the internal one (.100, on eth0), VIP 1 the external one (.150, eth1)."""
        if index not in (0, 1):
            raise LabError(f"the lab has VIPs 0 (internal) and 1 (external), not {index}")
        return f"{self.subnet}.{100 if index == 0 else 150}"

    @property
    def root_address(self) -> str:
        """The root namespace's own address on the internal bridge."""
        return f"{self.subnet}.126"

    @property
    def root_external_address(self) -> str:
        """The root namespace's own address on the external bridge."""
        return f"{self.subnet}.190"

    @property
    def outer(self) -> str:
        """The part of the external /25 that the root namespace reaches."""
        return f"{self.subnet}.128/26"

    @property
    def root_external_link(self) -> str:
        """The root-side veth into the external bridge (<= 15 chars)."""
        return f"{self.prefix[:9]}-rext"

    @property
    def guard(self) -> str:
        """The /24 that the root namespace must never route out."""
        return f"{self.subnet}.0/24"

    @property
    def inner(self) -> str:
        """The /25 that the root namespace reaches through its lab veth."""
        return f"{self.subnet}.0/25"

    @property
    def root_link(self) -> str:
        """The root-side veth name (<= 15 chars)."""
        return f"{self.prefix[:9]}-root"

    def namespaces(self) -> list[str]:
        """Every namespace of this lab."""
        return [self.hub, *(self.ns(n) for n in self.nodes)]


def _check_subnet(subnet: str) -> None:
    try:
        net = ipaddress.IPv4Network(f"{subnet}.0/24")
    except ValueError:
        raise LabError(f"bad subnet {subnet!r} (want three octets like 10.99.0)") from None
    if not net.subnet_of(ipaddress.IPv4Network("10.99.0.0/16")):
        raise LabError(f"lab subnets live in 10.99.0.0/16, not {net}")


def guard_installed(net: LabNet) -> bool:
    """True when an address of the /24 outside the /25 is unreachable from the root ns."""
    probe = f"{net.subnet}.200"
    res = ip("route", "get", probe, check=False)
    text = res.stdout + res.stderr
    return res.returncode != 0 or "unreachable" in text


def up(
    net: LabNet, *, hosts: bool = True, ephemeral: bool = True, folder: Path | None = None
) -> None:
    """Build the network; on any failure, tear down what was built and raise. It is
    registered (hactl/lab/registry.py) as this process's; ``ephemeral``: this process takes it
    down before it ends (a test's, a benchmark's), so it is left over once this process is
    gone."""
    if os.geteuid() != 0:
        raise LabError("needs root (network namespaces); run as root")
    if shutil.which("ip") is None:
        raise LabError("the ip command is missing: apt-get install -y iproute2")
    _check_subnet(net.subnet)
    existing = set(ip("netns", "list").stdout.split())
    if clash := sorted(existing & set(net.namespaces())):
        raise LabError(f"namespaces already exist: {', '.join(clash)} (hactl lab down?)")
    for other in registry.entries():
        if other.subnet == net.subnet and other.prefix != net.prefix:
            where = f" in {other.dir}" if other.dir else ""
            raise LabError(
                f"subnet {net.subnet}.0/24 is taken by lab {other.prefix}{where} (built by pid"
                f" {other.owner}): hactl lab down --dir <its folder>, or pick another --subnet"
            )
    registry.register(net.prefix, net.subnet, net.nodes, ephemeral=ephemeral, folder=folder)
    # 1. the guard, before any lab address exists
    ip("route", "add", "unreachable", net.guard, check=False)
    if not guard_installed(net):
        raise LabError(f"cannot install the guard route 'unreachable {net.guard}'; refusing")
    try:
        ip("netns", "add", net.hub)
        ip("-n", net.hub, "link", "set", "lo", "up")
        for bridge in ("br0", "br1"):
            ip("-n", net.hub, "link", "add", bridge, "type", "bridge")
            ip("-n", net.hub, "link", "set", bridge, "up")
        for node in net.nodes:
            ns = net.ns(node)
            ip("netns", "add", ns)
            ip("-n", ns, "link", "set", "lo", "up")
            for dev, hub_end, bridge, addr in (
                ("eth0", f"v-{node}"[:15], "br0", net.address(node)),
                ("eth1", f"x-{node}"[:15], "br1", net.external_address(node)),
            ):
                ip(
                    "link",
                    "add",
                    hub_end,
                    "netns",
                    net.hub,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    dev,
                    "netns",
                    ns,
                )
                ip("-n", net.hub, "link", "set", hub_end, "master", bridge)
                ip("-n", net.hub, "link", "set", hub_end, "up")
                ip("-n", ns, "addr", "add", f"{addr}/25", "dev", dev)
                ip("-n", ns, "link", "set", dev, "up")
            if hosts:
                _write_hosts(net, node)
        # the root namespace's own ways in: a veth into each bridge, each reaching only its
        # more specific route (the rest of the /24 stays unreachable)
        for link, hub_end, bridge, addr, route in (
            (net.root_link, "r-root", "br0", net.root_address, net.inner),
            (net.root_external_link, "r-ext", "br1", net.root_external_address, net.outer),
        ):
            ip("link", "add", link, "type", "veth", "peer", "name", hub_end, "netns", net.hub)
            ip("-n", net.hub, "link", "set", hub_end, "master", bridge)
            ip("-n", net.hub, "link", "set", hub_end, "up")
            ip("addr", "add", f"{addr}/32", "dev", link)
            ip("link", "set", link, "up")
            ip("route", "add", route, "dev", link, "src", addr)
    except BaseException:
        down(net)
        raise


def _write_hosts(net: LabNet, node: str) -> None:
    d = Path("/etc/netns") / net.ns(node)
    d.mkdir(parents=True, exist_ok=True)
    lines = ["127.0.0.1 localhost"] + [f"{net.address(n)} {n}" for n in net.nodes]
    (d / "hosts").write_text("\n".join(lines) + "\n")


def down(net: LabNet) -> list[str]:
    """Remove everything :func:`up` made; returns what could not be removed."""
    problems: list[str] = []
    existing = set(ip("netns", "list", check=False).stdout.split())
    ip("link", "del", net.root_link, check=False)
    ip("link", "del", net.root_external_link, check=False)
    for ns in reversed(net.namespaces()):
        if ns in existing:
            res = ip("netns", "del", ns, check=False)
            if res.returncode != 0:
                problems.append(f"netns {ns}: {res.stderr.strip()}")
        shutil.rmtree(Path("/etc/netns") / ns, ignore_errors=True)
    ip("route", "del", net.inner, check=False)
    ip("route", "del", net.outer, check=False)
    ip("route", "del", "unreachable", net.guard, check=False)
    if not problems:
        registry.unregister(net.prefix)
    return problems


def exec_argv(net: LabNet, node: str, argv: list[str]) -> list[str]:
    """``argv`` run inside ``node``'s namespace (with its /etc/hosts)."""
    return ["ip", "netns", "exec", net.ns(node), *argv]

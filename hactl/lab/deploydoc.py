"""docs/deploy.md's steps that the lab runs as written: the fenced ``sh`` block after a
``<!-- lab: NAME -->`` comment. The lab changes nothing in a block but what deploy.md says it
changes: the variables the block names (``HACTL_ETC``, ``HACTL_AUTH``, ``HACTL_NATS``, ...), the
controllers' addresses (the guide's 10.0.0.11-13 and VIPs 10.0.0.10 / 203.0.113.100 become the
lab's, :func:`addresses`) and ``PATH`` (the guide links ``hactl`` into /usr/local/bin; the lab
puts its virtualenv's ``bin`` first). The doc cannot rot for these steps: a lab built without
them fails."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from hactl.lab.net import LabError, LabNet

DEPLOY_MD = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"
_BLOCK = r"<!-- lab: {name} -->\n```sh\n(.*?)\n```"
#: the guide's internal network: controllers 10.0.0.11-13, the internal VIP 10.0.0.10
GUIDE_CONTROLLERS = ("10.0.0.11", "10.0.0.12", "10.0.0.13")
GUIDE_VIPS = ("10.0.0.10", "203.0.113.100")
#: the directory of the ``hactl`` this lab runs (the venv's bin): first on a block's PATH
BIN = str(Path(sys.executable).parent)


def addresses(net: LabNet) -> dict[str, str]:
    """The guide's addresses -> the lab's: controller i is the lab's ``.1i`` (inside the lab
    subnet even when the lab has fewer nodes), the VIPs are the lab's."""
    out = {a: f"{net.subnet}.{11 + i}" for i, a in enumerate(GUIDE_CONTROLLERS)}
    out.update(zip(GUIDE_VIPS, (net.vip(0), net.vip(1)), strict=True))
    return out


def block(name: str, doc: Path = DEPLOY_MD) -> str:
    """The ``sh`` block docs/deploy.md marks ``lab: name``; LabError when there is none."""
    try:
        text = doc.read_text(encoding="utf-8")
    except OSError as exc:
        raise LabError(f"{doc}: {exc.strerror} (hactl lab runs from a checkout)") from None
    found = re.search(_BLOCK.format(name=re.escape(name)), text, re.DOTALL)
    if found is None:
        raise LabError(f"{doc} has no block marked <!-- lab: {name} -->")
    return found.group(1)


def localize(script: str, mapping: dict[str, str]) -> str:
    """``script`` with every whole address of ``mapping`` replaced (10.0.0.11 never matches
    inside 10.0.0.110)."""
    if not mapping:
        return script
    pattern = "|".join(re.escape(a) for a in sorted(mapping, key=len, reverse=True))
    return re.sub(rf"(?<![\d.])(?:{pattern})(?![\d])", lambda m: mapping[m.group(0)], script)


def run(
    name: str,
    env: dict[str, str],
    doc: Path = DEPLOY_MD,
    *,
    net: LabNet | None = None,
    timeout: float = 60.0,
    log: Path | None = None,
    trace: bool = False,
) -> str:
    """Run block ``name`` with ``bash -eu`` (and pipefail), ``env`` added to a plain PATH with
    :data:`BIN` first, the guide's addresses made ``net``'s; its output (stdout, then stderr),
    also written to ``log``; ``trace``: each command echoed with its start time (bash
    xtrace), for a block that handles no secret. LabError naming the step (and the log) when
    it fails."""
    script = localize(block(name, doc), addresses(net) if net is not None else {})
    if trace:
        script = "PS4='+ [${EPOCHREALTIME}] '; set -x\n" + script
    try:
        res = subprocess.run(
            ["bash", "-eu", "-o", "pipefail", "-c", script],
            env={"PATH": f"{BIN}:/usr/sbin:/usr/bin:/sbin:/bin", **env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise LabError(f"docs/deploy.md step {name!r}: not done in {timeout:g} s") from None
    out = res.stdout + res.stderr
    if log is not None:
        log.write_text(out)
    if res.returncode != 0:
        failed = [line for line in res.stdout.splitlines() if "FAILED" in line][:3]
        said = " | ".join(failed) or res.stderr[-500:].strip()
        where = f" (all of it: {log})" if log is not None else ""
        raise LabError(f"docs/deploy.md step {name!r}: exit {res.returncode}: {said}{where}")
    return out

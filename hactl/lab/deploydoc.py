"""docs/deploy.md's steps that the lab runs as written: the fenced ``sh`` block after a
``<!-- lab: NAME -->`` comment, with only the variables the doc names set (``HACTL_ETC``: the
site's /etc/hactl). The doc cannot rot for these steps: a lab built without them fails."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from hactl.lab.net import LabError

DEPLOY_MD = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"
_BLOCK = r"<!-- lab: {name} -->\n```sh\n(.*?)\n```"


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


def run(name: str, env: dict[str, str], doc: Path = DEPLOY_MD) -> None:
    """Run block ``name`` with ``bash -eu`` and ``env`` added to a plain PATH."""
    res = subprocess.run(
        ["bash", "-eu", "-c", block(name, doc)],
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if res.returncode != 0:
        raise LabError(f"docs/deploy.md step {name!r}: exit {res.returncode}: {res.stderr[-500:]}")

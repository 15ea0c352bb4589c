"""``state.apply``: run an ordered plan from the master, resource by resource.

The master sends concrete resources (content already rendered). For each, in order:

- a failed ``require``/``watch`` target fails this one without running it;
- ``file.managed`` goes through ``file.apply`` (staged, checked, backed up, atomic);
- ``sysctl.present`` sets ``/proc/sys/...`` when it differs;
- ``service.running`` starts the service when it is not running, and reloads it (or restarts
  it with ``reload: false``) when a watched resource changed in this run. For HAProxy,
  ``save_state`` dumps ``show servers state`` there first, so runtime state survives.

``test: true`` changes nothing and says what would change (``result: None``). Values listed
in ``redact`` (the pillar's secrets) are replaced by ``***`` in everything returned.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from hactl.minion.admin_socket import admin_command
from hactl.minion.executors import galera_member, openstack, rabbitmq_member
from hactl.minion.executors.base import Arg, CommandRefused, ExecContext, Executor, validate_args
from hactl.minion.executors.files import FILE_APPLY, allowed_path
from hactl.minion.executors.files import apply as file_apply
from hactl.minion.executors.files import preflight as file_preflight
from hactl.minion.executors.rabbitmq import import_definitions
from hactl.minion.executors.runtime import service_action, service_running
from hactl.schema import SchemaError
from hactl.wire.singleton import FIELDS as SINGLETON_FIELDS
from hactl.wire.singleton import SingletonSpec

Result = dict[str, Any]


def _redact(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        for s in secrets:
            value = value.replace(s, "***")
        return value
    if isinstance(value, dict):
        return {k: _redact(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, secrets) for v in value]
    return value


#: each resource type's arguments, checked (types, unknown names) before any resource runs:
#: ``contents: 4096`` would otherwise become a zero-filled file of that size
_FILE_ARGS = tuple(
    Arg(a.name, a.types, a.required, a.default, a.choices, a.between)
    for a in FILE_APPLY.args
    if a.name not in ("content", "test")
)
RESOURCE_ARGS: dict[str, Executor] = {
    "file.managed": Executor(
        "file.managed",
        # source: the template the master rendered contents from (shown, never read here)
        (*_FILE_ARGS, Arg("contents", (str,)), Arg("source", (str,), required=False)),
        file_apply,
    ),
    "sysctl.present": Executor(
        "sysctl.present", (Arg("name", (str,)), Arg("value", (str, int))), file_apply
    ),
    "service.running": Executor(
        "service.running",
        (
            Arg("name", (str,)),
            Arg("reload", (bool,), required=False, default=True),
            Arg("save_state", (str,), required=False),
        ),
        file_apply,
    ),
    "galera.member": Executor(
        "galera.member",
        (
            Arg("bootstrap", (bool,), required=False, default=False),
            Arg("peers", (list,)),
            Arg("timeout", (int,), required=False, default=300, between=(1, 3600)),
        ),
        file_apply,
    ),
    "rabbitmq.definitions": Executor("rabbitmq.definitions", (Arg("path", (str,)),), file_apply),
    # the schema only: _singleton hands the checked spec to the keeper
    "singleton.running": Executor("singleton.running", SINGLETON_FIELDS, file_apply),
    **openstack.ARGS,  # galera.database, keystone.*
    **rabbitmq_member.ARGS,
}


def _preflight(ctx: ExecContext, plan: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every resource checked before the first one runs; a bad one refuses the whole plan, so
    nothing is half-applied: argument types, the content policy, the sysctl and service
    allowlists, paths under the allowed roots."""
    checked = []
    for res in plan:
        rid, rtype = res["id"], res.get("type")
        schema = RESOURCE_ARGS.get(str(rtype))
        if schema is None:
            raise CommandRefused("state.apply", f"{rid}: unknown resource type {rtype!r}")
        for key in ("require", "watch"):
            deps = res.get(key) or []
            if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
                raise CommandRefused("state.apply", f"{rid}: {key} must be a list of ids")
        try:
            args = validate_args(schema, dict(res.get("args") or {}))
        except CommandRefused as exc:
            raise CommandRefused("state.apply", f"{rid}: {exc.reason}") from None
        if rtype == "file.managed":
            try:
                file_preflight(ctx, {**args, "content": args["contents"]})
            except CommandRefused as exc:
                raise CommandRefused("state.apply", f"{rid}: {exc.reason}") from None
        elif rtype == "sysctl.present" and args["name"] not in ctx.sysctls:
            known = ", ".join(sorted(ctx.sysctls))
            raise CommandRefused(
                "state.apply",
                f"{rid}: sysctl {args['name']!r} is not in this minion's allowlist ({known})",
            )
        elif rtype == "singleton.running" and args["service"] not in ctx.services:
            raise CommandRefused(
                "state.apply",
                f"{rid}: service {args['service']!r} is not in this minion's services allowlist",
            )
        elif rtype == "galera.member" and ctx.galera is None:
            raise CommandRefused(
                "state.apply", f"{rid}: galera.member needs this minion's galera section"
            )
        elif rtype == "galera.member" and not all(
            isinstance(p, str) and p.rpartition(":")[2].isdigit() for p in args["peers"]
        ):
            raise CommandRefused("state.apply", f"{rid}: peers are host:port strings")
        elif rtype == "rabbitmq.definitions":
            try:
                allowed_path(ctx, args["path"])
            except CommandRefused as exc:
                raise CommandRefused("state.apply", f"{rid}: {exc.reason}") from None
        elif rtype in openstack.ARGS or rtype in rabbitmq_member.ARGS:
            try:
                if rtype in rabbitmq_member.ARGS:
                    rabbitmq_member.settings(ctx, args)
                else:
                    openstack.preflight(ctx, str(rtype), args)
            except CommandRefused as exc:
                raise CommandRefused("state.apply", f"{rid}: {exc.reason}") from None
        elif rtype == "service.running" and args["name"] not in ctx.services:
            raise CommandRefused(
                "state.apply", f"{rid}: service {args['name']!r} is not configured on this minion"
            )
        checked.append({**res, "args": args})
    return checked


async def _file(ctx: ExecContext, args: dict[str, Any], test: bool) -> Result:
    given = {k: v for k, v in args.items() if k not in ("contents", "source")}
    given["content"] = args["contents"]
    given["test"] = test
    return await file_apply(ctx, given)


def _sysctl_path(name: str) -> Path:
    if not name or ".." in name or "/" in name:
        raise CommandRefused("state.apply", f"bad sysctl name {name!r}")
    return Path("/proc/sys") / name.replace(".", "/")


async def _sysctl(ctx: ExecContext, args: dict[str, Any], test: bool) -> Result:
    if str(args["name"]) not in ctx.sysctls:  # kernel.core_pattern=|/x would be root exec
        raise CommandRefused(
            "state.apply",
            f"sysctl {args['name']!r} is not in this minion's "
            f"allowlist ({', '.join(sorted(ctx.sysctls)) or 'none'})",
        )
    path = _sysctl_path(str(args["name"]))
    want = str(args["value"])
    try:
        have = (await asyncio.to_thread(path.read_text)).strip()
    except OSError as exc:
        return {"result": False, "changes": {}, "comment": f"{args['name']}: {exc.strerror}"}
    if have == want:
        return {"result": True, "changes": {}, "comment": f"{args['name']} is already {want}"}
    change = {"old": have, "new": want}
    if test:
        return {"result": None, "changes": change, "comment": f"{args['name']} would be set"}
    try:
        await asyncio.to_thread(path.write_text, want + "\n")
    except OSError as exc:
        return {"result": False, "changes": {}, "comment": f"{args['name']}: {exc.strerror}"}
    return {"result": True, "changes": change, "comment": f"{args['name']} set to {want}"}


async def _save_state(ctx: ExecContext, target: str) -> str:
    """Dump HAProxy's server state for ``load-server-state-from-file``; '' when done."""
    if not ctx.haproxy_socket:
        return "no haproxy admin socket configured: state not saved"
    try:
        path = allowed_path(ctx, target)
        state = await admin_command(ctx.haproxy_socket, "show servers state")
        await asyncio.to_thread(path.write_text, state)
    except (OSError, TimeoutError, CommandRefused) as exc:
        return f"server state not saved: {exc}"
    return ""


async def _service(
    ctx: ExecContext, args: dict[str, Any], test: bool, triggered: list[str]
) -> Result:
    name = str(args["name"])
    if name not in ctx.services:  # under systemd too: never poweroff.target
        why = f"service {name!r} is not configured on this minion"
        return {"result": False, "changes": {}, "comment": why}
    running = await service_running(ctx, name)
    if not running:
        if test:
            return {"result": None, "changes": {"start": name}, "comment": f"would start {name}"}
        ok, out = await service_action(ctx, name, "start")
        return {"result": ok, "changes": {"start": name} if ok else {}, "comment": out}
    if not triggered:
        return {"result": True, "changes": {}, "comment": f"{name} is running"}
    action = "reload" if args.get("reload", True) else "restart"
    why = f"{action} {name}: watched {', '.join(triggered)} changed"
    if test:
        return {"result": None, "changes": {action: name}, "comment": f"would {why}"}
    note = await _save_state(ctx, str(args["save_state"])) if args.get("save_state") else ""
    ok, out = await service_action(ctx, name, action)
    comment = "; ".join(x for x in (why if ok else f"{why}: FAILED: {out}", note) if x)
    return {"result": ok, "changes": {action: name} if ok else {}, "comment": comment}


def _singleton(ctx: ExecContext, args: dict[str, Any], test: bool) -> Result:
    """Hand a singleton to the keeper (minion/singleton.py), which runs it only under a lease
    the master grants; refused when this minion keeps no singletons or the service is not in
    its own allowlist."""
    try:
        spec = SingletonSpec.from_args(args)
    except SchemaError as exc:
        return {"result": False, "changes": {}, "comment": str(exc)}
    keeper = ctx.singletons
    if keeper is None:
        why = "this minion keeps no singletons (minion.yaml singletons)"
        return {"result": False, "changes": {}, "comment": why}
    known = keeper.copies.get(spec.name)
    change = {} if known is not None and known.spec == spec else {"singleton": spec.name}
    if test:
        return {"result": None if change else True, "changes": change, "comment": "checked"}
    if why := keeper.configure(spec):
        return {"result": False, "changes": {}, "comment": why}
    return {
        "result": True,
        "changes": change,
        "comment": f"{spec.name}: runs here only under a lease",
    }


async def _one(
    ctx: ExecContext, res: dict[str, Any], test: bool, done: dict[str, Result]
) -> Result:
    rid, rtype, args = str(res.get("id")), str(res.get("type")), dict(res.get("args") or {})
    require, watch = list(res.get("require") or []), list(res.get("watch") or [])
    failed = [d for d in (*require, *watch) if done.get(d, {}).get("result") is False]
    if failed:
        why = f"not run: requisite {', '.join(failed)} failed"
        return {"result": False, "changes": {}, "comment": why}
    try:
        if rtype == "file.managed":
            return await _file(ctx, args, test)
        if rtype == "sysctl.present":
            return await _sysctl(ctx, args, test)
        if rtype == "singleton.running":
            return _singleton(ctx, args, test)
        if rtype == "galera.member":
            return await galera_member.member(ctx, args, test)
        if rtype == "rabbitmq.definitions":
            changed = any(done.get(w, {}).get("changes") for w in watch)
            return await import_definitions(ctx, args["path"], changed, test)
        if rtype in openstack.ARGS:
            return await openstack.run(ctx, rtype, args, test)
        if rtype in rabbitmq_member.ARGS:
            return await rabbitmq_member.member(ctx, args, test)
        if rtype == "service.running":
            triggered = [w for w in watch if done.get(w, {}).get("changes")]
            return await _service(ctx, args, test, triggered)
    except CommandRefused as exc:
        return {"result": False, "changes": {}, "comment": f"refused: {exc.reason}"}
    except OSError as exc:
        return {"result": False, "changes": {}, "comment": f"{type(exc).__name__}: {exc}"}
    return {"result": False, "changes": {}, "comment": f"unknown resource type {rtype!r} ({rid})"}


def mask_diff(diff: str, secrets: list[str]) -> str:
    """Mask the secrets of a diff, including the *old* ones the minion was never told: a line
    that starts like a line holding a current secret (``stats auth admin:``) has its rest
    masked, so a rotated password on the removed line does not show either. A secret of many
    lines (a PEM certificate chain and key) never appears whole on one line of a diff: each
    of its lines (16 characters or more) is masked where it appears."""
    lines = diff.splitlines(keepends=True)
    parts = {
        p.strip() for s in secrets if "\n" in s for p in s.splitlines() if len(p.strip()) >= 16
    }
    prefixes: set[str] = set()
    for line in lines:
        if line.startswith("+") and not line.startswith("+++"):
            for secret in secrets:
                at = line.find(secret)
                if at > 1 and line[1:at].strip():
                    prefixes.add(line[1:at])
    out = []
    for line in lines:
        body = line[1:]
        hit = next((p for p in prefixes if body.startswith(p)), None)
        changed = line[:1] in ("-", "+", " ") and not line.startswith(("---", "+++"))
        if changed and body.strip() in parts:
            out.append(f"{line[0]}***\n")
            continue
        out.append(f"{line[0]}{hit}***\n" if hit is not None and changed else line)
    return "".join(out)


async def state_apply(ctx: ExecContext, args: dict[str, Any]) -> dict[str, Any]:
    """Run every resource of the plan in order; the overall result is False if any failed."""
    plan, test, secrets = args["plan"], args["test"], [str(s) for s in args["redact"] if s]
    if not all(isinstance(r, dict) and isinstance(r.get("id"), str) for r in plan):
        raise CommandRefused("state.apply", "plan must be a list of resources with ids")
    plan = _preflight(ctx, plan)
    done: dict[str, Result] = {}
    results = []
    for res in plan:
        start = time.perf_counter()
        out = await _one(ctx, res, test, done)
        done[res["id"]] = out
        rargs = res.get("args") or {}
        if secrets and "diff" in (out.get("changes") or {}):
            out = {
                **out,
                "changes": {
                    **out["changes"],
                    "diff": mask_diff(str(out["changes"]["diff"]), secrets),
                },
            }
        results.append(
            {
                "id": res["id"],
                "type": res.get("type"),
                "state": res.get("state"),
                "name": rargs.get("path") or rargs.get("name"),
                "duration_ms": round((time.perf_counter() - start) * 1000, 1),
                **out,
            }
        )
    failed = sum(1 for r in results if r["result"] is False)
    changed = sum(1 for r in results if r["changes"])
    summary = {"total": len(results), "failed": failed, "changed": changed}
    reply: dict[str, Any] = _redact(
        {"result": failed == 0, "test": test, "resources": results, "summary": summary}, secrets
    )
    return reply


STATE_APPLY = Executor(
    name="state.apply",
    args=(
        Arg("plan", (list,)),
        Arg("test", (bool,), required=False, default=False),
        Arg("redact", (list,), required=False, default=()),
    ),
    body=state_apply,
    doc=__doc__ or "",
)

"""Start a foreground program in the background, the way a service manager would (lab only).

The lab has no systemd: a minion's ``services.<name>.start`` must be a command that returns
once the service is started. HAProxy and keepalived daemonize themselves (``-D``); RabbitMQ
and the API stand-ins run in the foreground. ``python -m hactl.lab.launch --log FILE [--env
K=V ...] [--pidfile FILE] -- ARGV...`` forks twice (a new session, detached from the caller),
points the program's stdin at /dev/null and its output at ``FILE`` -- so the caller's pipes
close and it returns at once -- and execs it. The command returns once the exec happened
(exit 127 when it failed); with ``--pidfile`` the program's pid is written before it returns
(a service manager knows the pid when the start ends). No shell.
"""

from __future__ import annotations

import argparse
import os
import sys


def main() -> None:
    """Entry point."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--log", required=True, help="the program's stdout and stderr (appended)")
    p.add_argument("--env", action="append", default=[], help="K=V added to the environment")
    p.add_argument("--pidfile", default="", help="write the program's pid here")
    p.add_argument("argv", nargs="+", help="the program and its arguments (after --)")
    a = p.parse_args()
    env = dict(os.environ)
    for pair in a.env:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            p.error(f"--env needs K=V, got {pair!r}")
        env[key] = value
    first = os.fork()
    if first:  # the caller's child: done once the program's pid is recorded (a start command
        # that returns before its pid file exists lets a singleton keeper that looks 0.5 s
        # later on a busy machine find no copy, and count it as failed)
        _, status = os.waitpid(first, 0)
        os._exit(os.waitstatus_to_exitcode(status))
    os.setsid()
    # a close-on-exec pipe tells the session leader the exec happened (EOF) or failed (the
    # errno), as systemd's Type=exec does: the start returns once the program runs, not while
    # the pid still names a forked copy of this launcher
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    program = os.fork()
    if program:  # the session leader: the program's pid, written before the start returns
        os.close(ready_w)
        failed = os.read(ready_r, 64)
        os.close(ready_r)
        if failed:
            os.waitpid(program, 0)
            os._exit(127)
        if a.pidfile:
            try:
                with open(a.pidfile, "w", encoding="ascii") as f:
                    f.write(f"{program}\n")
            except OSError as exc:
                sys.stderr.write(f"launch: {a.pidfile}: {exc.strerror}\n")
                os._exit(1)
        os._exit(0)
    os.close(ready_r)
    null = os.open(os.devnull, os.O_RDONLY)
    out = os.open(a.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(null)
    os.close(out)
    try:
        os.execvpe(a.argv[0], a.argv, env)  # noqa: S606 -- the point: exec the argv given, never a shell
    except OSError as exc:
        sys.stderr.write(f"launch: {a.argv[0]}: {exc.strerror}\n")
        os.write(ready_w, str(exc.errno).encode())
        os._exit(127)


if __name__ == "__main__":
    main()

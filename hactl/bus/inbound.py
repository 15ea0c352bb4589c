"""What arrives on a subject a process answers, and whether a real requester sent it."""

from __future__ import annotations

from dataclasses import dataclass

from hactl.auth.perms import INBOX_ROOT


def untrusted_request(reply: str, headers: dict[str, str] | None) -> str:
    """Why a message on a command subject is not a real request ('' when it is one).

    Only masters and admins may publish on ``hactl.cmd.*`` (hactl/auth/perms.py), and each of
    them asks for its reply on its own inbox (``_HI.<key>.``). Anything else there was delivered
    by the server on someone's behalf -- a JetStream delivery (reply ``$JS.ACK...``), a direct
    get or API answer whose reply subject an operator pointed at a minion (no reply, stream
    headers) -- and is refused unread."""
    if not reply.startswith(INBOX_ROOT + "."):
        return f"reply subject {reply[:40]!r} is not an identity inbox"
    if headers and any(k.startswith("Nats-") for k in headers):
        return "a JetStream delivery, not a request"
    return ""


@dataclass(frozen=True, slots=True)
class Inbound:
    """A raw message on a subject a process answers (:meth:`Bus.answer`)."""

    subject: str
    data: bytes
    reply: str
    headers: dict[str, str] | None

"""The webhook request is exact: method, path, headers, the body's HMAC; bad sinks refused."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from hactl.errors import HactlError
from hactl.master.notify import Sink, request_bytes, sign


def test_request_is_a_signed_http_post() -> None:
    """POST to the URL's path and query, JSON, the event id, the HMAC of exactly the body."""
    sink = Sink("https://hooks.example.org/h/1?x=2", ("hactl/event/alert/**",), b"k")
    body = b'{"tag":"hactl/event/alert/x"}'
    raw = request_bytes(sink, body, "ev1")
    head, _, sent = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /h/1?x=2 HTTP/1.1" and "Host: hooks.example.org" in lines
    assert "X-Hactl-Event: ev1" in lines and sent == body
    want = "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert f"X-Hactl-Signature: {want}" in lines and sign(b"k", body) == want
    unsigned = request_bytes(Sink("http://h/", ("hactl/**",)), body, "e")
    assert b"X-Hactl-Signature" not in unsigned


@pytest.mark.parametrize("url", ["ftp://h/x", "http://", "hooks.example.org"])
def test_a_sink_needs_an_http_url(url: str) -> None:
    """Only http(s) URLs with a host."""
    with pytest.raises(ValueError, match="an http"):
        Sink(url, ("hactl/**",))


def test_a_sink_needs_valid_globs() -> None:
    """A malformed tag glob is refused when master.yaml loads."""
    with pytest.raises(HactlError):
        Sink("http://h/", ("hactl/**/x**",))

"""Tags, subjects, origins and globs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hactl.errors import TagError
from hactl.wire.tags import (
    AUDIT_SUBJECTS,
    JOB_SUBJECTS,
    STREAM_SUBJECTS,
    TagGlob,
    command_subject,
    expected_origin,
    subject_matches,
    subject_to_tag,
    tag_to_subject,
    validate_id,
    validate_tag,
)

GOOD = [
    "hactl/minion/ctl1/start",
    "hactl/minion/ctl1/heartbeat",
    "hactl/minion/ctl-2/lost",
    "hactl/beacon/ctl1/vrrp",
    "hactl/job/01M7Y8WRXH0JEWBTVH6AEPRR21/new",
    "hactl/job/01M7Y8WRXH0JEWBTVH6AEPRR21/ret/ctl3",
    "hactl/reactor/galera_down/fired",
    "hactl/event/demo",
    "hactl/event/a/b/c/d",
]
BAD = [
    "",
    "salt/beacon/ctl1/vrrp",
    "hactl/beacon",
    "hactl/beacon/ctl1",
    "hactl/beacon/ctl1/vrrp/extra",
    "hactl/minion/ctl1/dance",
    "hactl/job/x/old",
    "hactl/reactor/r/exploded",
    "hactl/cmd/ctl1",
    "hactl/beacon/ctl.1/vrrp",
    "hactl/beacon//vrrp",
    "hactl/beacon/ctl 1/vrrp",
    "hactl/beacon/*/vrrp",
    "hactl/event/" + "x" * 300,
]


@pytest.mark.parametrize("tag", GOOD)
def test_good_tags_validate_and_round_trip(tag: str) -> None:
    """Every well-formed tag maps to a subject and back unchanged."""
    assert validate_tag(tag) == tag
    assert subject_to_tag(tag_to_subject(tag)) == tag


@pytest.mark.parametrize("tag", BAD)
def test_bad_tags_raise_tag_error(tag: str) -> None:
    """Malformed tags (wrong root, kind, shape or characters) raise TagError with a reason."""
    with pytest.raises(TagError) as info:
        validate_tag(tag)
    assert info.value.reason


@pytest.mark.parametrize(
    ("tag", "origin"),
    [
        ("hactl/minion/ctl1/heartbeat", "ctl1"),
        ("hactl/minion/ctl1/lost", "master"),
        ("hactl/beacon/ctl2/galera", "ctl2"),
        ("hactl/job/01M7Y8WRXH0JEWBTVH6AEPRR21/new", "master"),
        ("hactl/job/01M7Y8WRXH0JEWBTVH6AEPRR21/ret/ctl3", "ctl3"),
        ("hactl/reactor/r/done", "master"),
        ("hactl/event/x", None),
    ],
)
def test_expected_origin_follows_the_design_table(tag: str, origin: str | None) -> None:
    """Who may send a tag is decided by its kind and shape."""
    assert expected_origin(tag) == origin


def test_command_subjects_are_outside_the_event_stream() -> None:
    """hactl.cmd.<id> is never captured by the event stream (no PubAck on a request)."""
    subject = command_subject("ctl1")
    assert subject == "hactl.cmd.ctl1"
    assert not any(subject_matches(s, subject) for s in STREAM_SUBJECTS)


@pytest.mark.parametrize(
    ("glob", "tag", "hit"),
    [
        ("hactl/beacon/*/vrrp", "hactl/beacon/ctl1/vrrp", True),
        ("hactl/beacon/*/vrrp", "hactl/beacon/ctl1/galera", False),
        ("hactl/beacon/ctl*/vrrp", "hactl/beacon/ctl12/vrrp", True),
        ("hactl/beacon/ctl?/vrrp", "hactl/beacon/ctl12/vrrp", False),
        ("hactl/beacon/**", "hactl/beacon/ctl1/vrrp", True),
        ("hactl/beacon/**", "hactl/minion/ctl1/start", False),
        ("hactl/**/vrrp", "hactl/beacon/ctl1/vrrp", True),
        ("hactl/**/vrrp", "hactl/beacon/ctl1/galera", False),
        ("hactl/job/*/ret/*", "hactl/job/01M7Y8WRXH0JEWBTVH6AEPRR21/ret/ctl1", True),
        ("hactl/job/*/ret/*", "hactl/job/01M7Y8WRXH0JEWBTVH6AEPRR21/new", False),
        ("hactl/beacon/>", "hactl/beacon/ctl1/vrrp", True),
        ("**", "hactl/event/x", True),
        ("hactl/*", "hactl/beacon/ctl1/vrrp", False),
    ],
)
def test_glob_matching(glob: str, tag: str, hit: bool) -> None:
    """'*' stays within a level, '**' and a final '>' span one or more levels."""
    assert TagGlob.parse(glob).match(tag) is hit


@pytest.mark.parametrize("glob", ["", "hactl/a**b", "hactl/>/x", "salt/**", "hactl/be.acon/*"])
def test_bad_globs_raise(glob: str) -> None:
    """A glob that cannot match any tag, or uses '>' or '**' wrongly, is refused."""
    with pytest.raises(TagError):
        TagGlob.parse(glob)


def test_broad_glob_subscribes_per_kind_never_cmd() -> None:
    """hactl/** expands to one subject per event kind; none covers hactl.cmd.*."""
    subjects = TagGlob.parse("hactl/**").subjects()
    assert set(subjects) == set(STREAM_SUBJECTS) | set(JOB_SUBJECTS) | set(AUDIT_SUBJECTS)
    assert TagGlob.parse("hactl/beacon/*/vrrp").subjects() == ("hactl.beacon.*.vrrp",)
    assert TagGlob.parse("hactl/*/ctl1/*").subjects() == tuple(
        f"hactl.{k}.ctl1.*" for k in ("minion", "beacon", "job", "reactor", "event", "audit")
    )
    assert TagGlob.parse("hactl/b*/ctl1/*").subjects() == ("hactl.beacon.ctl1.*",)


level = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=8)


@given(st.sampled_from(["beacon", "minion", "event"]), level, level, st.data())
def test_glob_subject_always_covers_its_matches(
    kind: str, a: str, b: str, data: st.DataObject
) -> None:
    """Whatever a glob matches, one of its NATS subjects delivers (server filter is a superset)."""
    last = b if kind != "minion" else data.draw(st.sampled_from(["start", "stop", "lost"]))
    tag = f"hactl/{kind}/{a}/{last}"
    levels = tag.split("/")
    mask = data.draw(st.lists(st.sampled_from(["keep", "star", "part"]), min_size=4, max_size=4))
    pattern = [
        lv if m == "keep" or i == 0 else "*" if m == "star" else lv[:1] + "*"
        for i, (lv, m) in enumerate(zip(levels, mask, strict=True))
    ]
    if data.draw(st.booleans()):
        cut = data.draw(st.integers(min_value=1, max_value=3))
        pattern = [*pattern[:cut], "**"]
    glob = TagGlob.parse("/".join(pattern))
    assert glob.match(tag)
    subject = tag_to_subject(tag)
    assert any(subject_matches(s, subject) for s in glob.subjects())
    assert subject_matches(glob.subject(), subject)


@pytest.mark.parametrize("bad", ["ctl1\n", "ctl1\n\n", "master\n"])
def test_a_trailing_newline_is_not_an_id(bad: str) -> None:
    """`$` would accept 'ctl1\\n'; ids, tags and command names match in full."""
    with pytest.raises(TagError):
        validate_id(bad)
    with pytest.raises(TagError):
        validate_tag(f"hactl/beacon/{bad}/vrrp")

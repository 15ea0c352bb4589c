"""The wire layer: pure functions, no I/O. Envelope codec, tags and subjects, ids."""

from hactl.wire.envelope import MAX_EVENT_BYTES, SCHEMA_VERSION, Event, decode, encode, new_event
from hactl.wire.ids import new_id
from hactl.wire.tags import (
    STREAM_SUBJECTS,
    TagGlob,
    expected_origin,
    subject_to_tag,
    tag_to_subject,
    validate_tag,
)

__all__ = [
    "MAX_EVENT_BYTES",
    "SCHEMA_VERSION",
    "STREAM_SUBJECTS",
    "Event",
    "TagGlob",
    "decode",
    "encode",
    "expected_origin",
    "new_event",
    "new_id",
    "subject_to_tag",
    "tag_to_subject",
    "validate_tag",
]

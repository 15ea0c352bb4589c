"""The per-minion job-return quota (master/jobquota.py) and where job traffic is stored."""

from __future__ import annotations

from hactl.auth.perms import AUDIT_STREAM, EVENTS_STREAM, JOBS_STREAM
from hactl.bus.history import stream_for
from hactl.bus.jetstream import StreamSettings
from hactl.master.jobquota import JobQuota
from hactl.wire.tags import JOB_SUBJECTS, STREAM_SUBJECTS, TagGlob, subject_matches


def test_a_steady_minion_is_never_flagged() -> None:
    """A minion returning at the refill rate (one a second against 60 a minute) never floods."""
    quota = JobQuota(limit=60, window_s=60)
    assert all(quota.note("ctl1", float(t)) is None for t in range(600))


def test_a_flood_is_flagged_once_then_purged_every_interval() -> None:
    """A burst past the bucket is flagged once ("flood"), a flood that goes on is due a purge
    every ``purge_every_s`` ("purge"), and another minion is untouched."""
    quota = JobQuota(limit=10, window_s=60, purge_every_s=10)
    verdicts = [quota.note("ctl1", 100.0 + i * 0.01) for i in range(2000)]  # 20 s of flood
    assert verdicts[:10] == [None] * 10
    assert verdicts.count("flood") == 1 and verdicts[10] == "flood"
    assert verdicts.count("purge") == 1  # 20 s at 100/s, plus the odd refill token
    assert quota.note("ctl2", 120.0) is None


def test_a_flood_ends_after_a_calm_window() -> None:
    """The flood is over (its alert resolved) a full window after the bucket last ran dry."""
    quota = JobQuota(limit=5, window_s=30)
    for i in range(50):
        quota.note("ctl3", 10.0 + i * 0.01)
    assert quota.calmed(20.0) == []
    assert quota.calmed(41.0) == ["ctl3"]
    assert quota.calmed(90.0) == []  # said once


def test_job_traffic_has_its_own_stream() -> None:
    """No subject is captured twice; job tags read from HACTL_JOBS, audit from HACTL_AUDIT,
    the rest (and a glob over every kind) from HACTL_EVENTS; the job stream has its own cap."""
    ret = "hactl.job.01M7Y8WRXH0JEWBTVH6AEPRR21.ret.ctl1"
    assert any(subject_matches(s, ret) for s in JOB_SUBJECTS)
    assert not any(subject_matches(s, ret) for s in STREAM_SUBJECTS)
    assert stream_for(TagGlob.parse("hactl/job/*/ret/ctl1")) == JOBS_STREAM
    assert stream_for(TagGlob.parse("hactl/audit/**")) == AUDIT_STREAM
    assert stream_for(TagGlob.parse("hactl/**")) == EVENTS_STREAM
    settings = StreamSettings(max_bytes=2**30, jobs_max_bytes=2**20)
    jobs = settings.jobs_config()
    assert jobs.name == JOBS_STREAM and jobs.max_bytes == 2**20
    assert jobs.subjects == list(JOB_SUBJECTS)
    assert settings.config().max_bytes == 2**30

"""/health's statuses from plain inputs: the newest update (or the error the store raised), this process's
ingest, or what the store's writer recorded of itself."""

from dataclasses import replace

import pytest

from hyperscope.domain.writer import GONE_AFTER_SECONDS, WriterRecord
from hyperscope.errors import StoreUnavailable
from hyperscope.service.health import health
from hyperscope.store.base import LatestUpdate

NOW = 1_800_000_000_000  # the clock every case is judged at (injected: no case depends on when it runs)


def latest(age_s=1.0):
    t = NOW - int(age_s * 1000)
    return LatestUpdate(height=7, time=t, ingested_at=t)


def writer(state="running", beat_age_s=1.0, stale_after=15.0, beats=True):
    return WriterRecord(state, None, 0, 0, stale_after, NOW - int(beat_age_s * 1000), beats, 4242, "host")


@pytest.mark.parametrize(
    ("inputs", "status", "code"),
    [
        ({"latest": latest()}, "ok", 200),
        ({"latest": None}, "empty", 503),
        ({"latest": latest(100)}, "stale", 503),
        ({"latest": StoreUnavailable("the store could not answer")}, "store_unavailable", 503),
        ({"latest": latest(), "keys_unavailable": "the key store cannot be reached"}, "keys_unavailable", 503),
        ({"latest": latest(), "writer": writer()}, "ok", 200),
        ({"latest": latest(), "writer": writer(beat_age_s=GONE_AFTER_SECONDS + 5)}, "ingest_down", 503),
        ({"latest": latest(), "writer": writer(state="failed")}, "ingest_failed", 503),
        ({"latest": latest(20), "writer": writer(stale_after=15.0)}, "stale", 503),  # the writer's pace
        ({"latest": latest(20), "writer": writer(stale_after=60.0)}, "ok", 200),
        ({"latest": latest(), "writer": writer(state="stopped", beat_age_s=3600)}, "ok", 200),  # cleanly stopped
        ({"latest": latest(), "writer": writer(beats=False)}, "ingest_down", 503),  # DuckDB: killed mid-run
    ],
)
def test_health_statuses(inputs, status, code):
    got_code, body = health(
        inputs["latest"], "postgresql", 30.0, None, inputs.get("writer"), inputs.get("keys_unavailable"), now=NOW
    )
    assert (body["status"], got_code) == (status, code), body
    if status == "ingest_down":
        assert "pid 4242" in body["ingest"]["reason"]
    if status == "store_unavailable":
        assert body["reason"] == "the store could not answer" and body["height"] is None


def test_the_writer_record_round_trips_and_a_garbled_one_is_none():
    record = writer()
    assert WriterRecord.decode(record.encode()) == record
    assert WriterRecord.decode("{not json") is None and WriterRecord.decode(None) is None
    assert WriterRecord.decode('{"state": "running"}') is None
    assert replace(record, state="stopped").gone(NOW) is False and record.gone(NOW) is False

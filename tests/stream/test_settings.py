"""WorkerSettings: environment variables, Kafka URLs, TLS/SASL options, secrets kept secret."""

import pytest
from pydantic import ValidationError

from stream import kafka
from stream.settings import WorkerSettings


def test_environment_variables_map_onto_fields(monkeypatch):
    monkeypatch.setenv("CONTRASTGEO_BROKER", "kafka://a:9092,kafka://b:9093")
    monkeypatch.setenv("CONTRASTGEO_TAKE_MAX", "32")
    monkeypatch.setenv("CONTRASTGEO_TRUSTED_PLACE_TYPES", '["city"]')
    s = WorkerSettings()
    assert s.bootstrap_servers() == ["a:9092", "b:9093"]
    assert s.take_max == 32 and s.trusted_place_types == ("city",)


def test_nonsense_is_refused():
    with pytest.raises(ValidationError, match="kafka://host:port"):
        WorkerSettings(broker="localhost:9092")
    with pytest.raises(ValidationError, match="sasl_username and sasl_password"):
        WorkerSettings(security_protocol="SASL_SSL")
    with pytest.raises(ValidationError, match="topic names must differ"):
        WorkerSettings(labeled_topic="posts")
    with pytest.raises(ValidationError):
        WorkerSettings(take_max=0)


def test_sasl_options_and_secrets_stay_secret():
    s = WorkerSettings(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="geo",
        sasl_password="hunter2",
        qdrant_api_key="qkey",
    )
    options = kafka.client_options(s)
    assert options["sasl_plain_password"] == "hunter2"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert "hunter2" not in repr(s) and "qkey" not in repr(s)
    assert "hunter2" not in s.model_dump_json()
    ssl = kafka.client_options(WorkerSettings(security_protocol="SSL"))
    assert ssl["ssl_context"] is not None


def test_every_consumer_takes_the_fetch_wait_from_the_settings_faust_s_included(tmp_path):
    """faust hard-codes a 1,500 ms fetch wait; tansu holds every fetch that long, so the
    worker's group consumer must get the settings' wait like every other consumer."""
    import asyncio

    from stream.app import create_app

    settings = WorkerSettings(broker="kafka://127.0.0.1:1", fetch_max_wait_ms=37)

    async def made() -> list[int]:
        app = create_app(settings, geotagger=object())  # never started: no model needed
        app.finalize()
        consumers = [
            app.consumer._thread._create_worker_consumer(app.transport),
            kafka.consumer(settings, group_id=None),
        ]
        waits = [c._fetch_max_wait_ms for c in consumers]
        for c in consumers:
            await c.stop()  # never started; closes its client
        return waits

    assert asyncio.run(made()) == [37, 37]
    with pytest.raises(ValidationError):
        WorkerSettings(fetch_max_wait_ms=0)

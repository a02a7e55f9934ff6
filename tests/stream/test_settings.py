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

"""Every Kafka client of the service is made here, so that each one gets the cluster's
address and its TLS/SASL options (``ServiceSettings.security_protocol`` and friends):
the workers' side clients, the replay tool, the refit job's label reader and announcer,
the benchmarks and the tests; and faust's credentials and transport for the workers' own
consumer (``faust_transport``: faust hard-codes the fetch wait that the others take from
the settings).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient

    from stream.settings import ServiceSettings


def client_options(settings: ServiceSettings) -> dict[str, Any]:
    """aiokafka options shared by every client: bootstrap servers, TLS, SASL."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers(),
        "security_protocol": settings.security_protocol,
    }
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = settings.ssl_context()
    if settings.security_protocol.startswith("SASL"):
        assert settings.sasl_password is not None  # checked by the settings' validator
        options.update(
            sasl_mechanism=settings.sasl_mechanism,
            sasl_plain_username=settings.sasl_username,
            sasl_plain_password=settings.sasl_password.get_secret_value(),
        )
    return options


def consumer(settings: ServiceSettings, *topics: str, **options: Any) -> AIOKafkaConsumer:
    """A consumer of ``topics`` (none: assign or only look up partitions and offsets);
    ``options`` as aiokafka's (``group_id``, ``auto_offset_reset``, ...). Its fetches are
    held at most ``settings.fetch_max_wait_ms`` by the broker."""
    from aiokafka import AIOKafkaConsumer

    options.setdefault("fetch_max_wait_ms", settings.fetch_max_wait_ms)
    return AIOKafkaConsumer(*topics, **client_options(settings), **options)


def producer(settings: ServiceSettings, **options: Any) -> AIOKafkaProducer:
    from aiokafka import AIOKafkaProducer

    return AIOKafkaProducer(**client_options(settings), **options)


def admin(settings: ServiceSettings) -> AIOKafkaAdminClient:
    from aiokafka.admin import AIOKafkaAdminClient

    return AIOKafkaAdminClient(**client_options(settings))


def faust_credentials(settings: ServiceSettings) -> Any:
    """faust's credentials object for the same TLS/SASL options (None for plaintext)."""
    import faust

    protocol = settings.security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = settings.ssl_context() if protocol in ("SSL", "SASL_SSL") else None
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    assert settings.sasl_password is not None  # checked by the settings' validator
    return faust.SASLCredentials(
        username=settings.sasl_username,
        password=settings.sasl_password.get_secret_value(),
        mechanism=settings.sasl_mechanism,
        ssl_context=context,
    )


def faust_transport(app: Any, fetch_max_wait_ms: int) -> Any:
    """faust's aiokafka transport for ``app``, its group consumer's fetches held at most
    ``fetch_max_wait_ms`` by the broker. faust hard-codes 1,500 ms; a broker that answers
    a fetch only when its wait has passed (tansu does, where Kafka answers as soon as a
    record is there) would add that much to every post's latency."""
    from faust.transport.drivers import aiokafka as driver

    class ConsumerThread(driver.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport):
            consumer = super()._create_worker_consumer(transport)
            consumer._fetch_max_wait_ms = fetch_max_wait_ms  # read when the consumer starts
            return consumer

    class Consumer(driver.Consumer):
        def _new_consumer_thread(self):
            return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    class Transport(driver.Transport):
        pass

    Transport.Consumer = Consumer
    return Transport(app.conf.broker_consumer, app)

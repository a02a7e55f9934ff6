"""The worker's logic, without Kafka: a batch of input messages -> the events to publish.

``Geotagger.process`` routes the batch (``stream.routing``), runs the served model on the
posts that need it and returns every output as ``(topic, key, value)``. The model and the
index run in one background thread, so the event loop keeps heartbeating and fetching
while a batch is embedded (onnxruntime releases the GIL).

One input never costs the others their outcome. ``route`` gives every input exactly one;
a prediction that fails is retried with capped exponential backoff ``predict_attempts``
times, then the batch is bisected: a post that fails alone is retried as often, each time
after a probe post went through, and only then dead-lettered (``model-error``); the rest are
published. When the
probe fails too, the model or the index is down for everyone: the batch is retried until it
succeeds (the caller commits nothing meanwhile), and after ``unready_after_s`` of failing
the worker reports not ready.

``reload`` serves the model version the index alias points to. It loads the new version
completely (checksums verified) before swapping it in between two batches; a version that
fails to load is refused and the current one keeps serving.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from schemas.events import (
    AreaProbability,
    DeadLetter,
    EventLocation,
    GeotaggedPost,
    InputRef,
    ScoredLocation,
)
from schemas.posts import Post
from stream.index import version_of
from stream.metrics import Metrics
from stream.predictor import Area, Candidate, Prediction, Predictor
from stream.routing import Message, Rules, dead_letter, route
from stream.settings import WorkerSettings

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Output:
    topic: str
    key: bytes | None
    value: bytes
    input: InputRef  # the input it is an outcome of
    source: str = ""  # a geotagged event's: gps, place or model
    abstained: bool = False

    @property
    def size(self) -> int:
        return len(self.key or b"") + len(self.value)


@dataclass
class Batch:
    """A batch's outputs and what they count, applied to the metrics once they are
    delivered (``Geotagger.delivered``): a batch retried five times counts once."""

    inputs: int
    outputs: list[Output]
    started: float  # perf_counter at the start of the first attempt
    dead_letters: list[DeadLetter] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # control-notice kinds
    model_version: str = ""
    predict_seconds: float = 0.0  # in the model's thread: embedding, index query, rerank

    def geotagged(self) -> Counter:
        """Geotagged events by source (gps, place, model)."""
        return Counter(o.source for o in self.outputs if o.source)


class NoModelServed(RuntimeError):
    pass


class Backoff:
    """Capped exponential waits between retries: 0.5 s, 1 s, 2 s ... up to ``max_s``."""

    def __init__(self, max_s: float):
        self.delay, self.max_s = 0.5, max_s

    async def wait(self) -> None:
        await asyncio.sleep(self.delay)
        self.delay = min(2 * self.delay, self.max_s)


class ModelDown(RuntimeError):
    """The probe post fails too: the model or the index fails for every post."""


# A post that any working model answers: tells "this post breaks the model" from "the model
# (or its index) is down".
PROBE = Post(id="probe", text="a post from somewhere")


class Geotagger:
    def __init__(self, settings: WorkerSettings, index: Any = None, metrics: Metrics | None = None):
        self.settings = settings
        self.rules = Rules.of(settings)
        self.index = index if index is not None else settings.open_index()
        self.metrics = metrics or Metrics()
        self.predictor: Predictor | None = None
        self.version: str | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._reload_lock = asyncio.Lock()
        self.failing_since: float | None = None  # monotonic time of the first failure in a row

    @property
    def ready(self) -> bool:
        """A model is served and batches are not failing for longer than ``unready_after_s``."""
        return self.predictor is not None and self.failing_for() < self.settings.unready_after_s

    def failing_for(self) -> float:
        """Seconds since batches started failing in a row (0 while they succeed)."""
        return 0.0 if self.failing_since is None else time.monotonic() - self.failing_since

    def failed(self) -> None:
        """A batch (or its prediction) failed; the failures in a row start now or go on."""
        if self.failing_since is None:
            self.failing_since = time.monotonic()

    def succeeded(self) -> None:
        self.failing_since = None

    async def retry_after(
        self, what: str, error: Exception, backoff: Backoff, counter: Any, **fields: Any
    ) -> None:
        """A failure that will be retried: counted, logged, the failures in a row go on;
        then the backoff's wait."""
        self.failed()
        counter.inc()
        log.error(
            what, error=f"{type(error).__name__}: {error}", retry_in_s=backoff.delay, **fields
        )
        await backoff.wait()

    async def _run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # ------------------------------------------------------------------ the model
    async def reload(self) -> bool:
        """Serve the version the alias points to; True when the served model changed."""
        async with self._reload_lock:
            collection = await self._run(self.index.resolve, self.settings.index_alias)
            if collection is None:
                raise NoModelServed(
                    f"no collection under the alias {self.settings.index_alias!r}: "
                    "run `contrastgeo export` and `contrastgeo index`"
                )
            version = version_of(collection)
            if version == self.version:
                return False
            try:
                model = await self._run(self.settings.load_model, version)
            except Exception as exc:
                self.metrics.reload_failures.inc()
                log.error(
                    "model refused; the current one keeps serving",
                    version=version,
                    serving=self.version,
                    error=f"{type(exc).__name__}: {exc}",
                )
                return False
            self.predictor = Predictor(
                model,
                self.index,
                collection,
                k=self.settings.top_k,
                rerank=self.settings.rerank,
                abstain_below=self.settings.abstain_below,
            )
            previous, self.version = self.version, version
            self.metrics.set_model_version(version)
            log.info("model loaded", version=version, previous=previous, model=repr(model))
            return True

    async def wait_for_model(self) -> None:
        """Retry ``reload`` with backoff until a model is served (start-up)."""
        backoff = Backoff(self.settings.retry_max_s)
        while self.predictor is None:
            try:
                await self.reload()
            except Exception as exc:  # no model yet, or the index unreachable: keep trying
                log.warning(
                    "waiting for a model",
                    reason=f"{type(exc).__name__}: {exc}",
                    retry_in_s=backoff.delay,
                )
            if self.predictor is None:
                await backoff.wait()

    async def _predict(self, posts: list[Post]) -> list[Prediction | Exception]:
        """A prediction for each post, or the error of a post that fails on its own."""
        backoff = Backoff(self.settings.retry_max_s)
        while True:
            for _ in range(self.settings.predict_attempts):
                try:
                    return await self._predict_once(posts)
                except Exception as exc:
                    await self.retry_after(
                        "prediction failed; retrying the batch",
                        exc,
                        backoff,
                        self.metrics.retries,
                        posts=len(posts),
                    )
            try:
                return await self._bisect(posts)
            except ModelDown as exc:
                log.error("the model fails for every post; retrying the batch", error=str(exc))

    async def _predict_once(self, posts: list[Post]) -> list[Prediction]:
        predictor = self.predictor
        if predictor is None:
            await self.wait_for_model()
            predictor = self.predictor
        return await self._run(predictor.predict, posts)

    async def _bisect(self, posts: list[Post]) -> list[Prediction | Exception]:
        """Halve the batch until each failing post is alone. A lone post is blamed only
        when it fails ``predict_attempts`` times, each failure followed by a probe post that
        goes through (a failure that passes is no reason to dead-letter it); a probe that
        fails means the model or the index is down for everyone (``ModelDown``)."""
        try:
            return await self._predict_once(posts)
        except Exception as exc:
            if len(posts) > 1:
                half = len(posts) // 2
                return [*await self._bisect(posts[:half]), *await self._bisect(posts[half:])]
            error = exc
        backoff = Backoff(self.settings.retry_max_s)
        for attempt in range(1, self.settings.predict_attempts + 1):
            try:
                await self._predict_once([PROBE])
            except Exception as probe_error:
                raise ModelDown(f"{type(probe_error).__name__}: {probe_error}") from error
            if attempt == self.settings.predict_attempts:
                break
            await self.retry_after(
                "a lone post failed; retrying it", error, backoff, self.metrics.retries
            )
            try:
                return await self._predict_once(posts)
            except Exception as exc:
                error = exc
        return [error]

    # ------------------------------------------------------------------ a batch
    async def process(self, messages: list[Message], started: float | None = None) -> Batch:
        """The outputs of a batch: exactly one outcome per input, none larger than
        ``max_output_bytes``. Raises only when the batch as a whole cannot be done (then
        nothing of it may be committed). Counts nothing: ``delivered`` does, once."""
        started = time.perf_counter() if started is None else started
        received_at = datetime.now(UTC)
        s = self.settings
        routed = route(messages, self.rules, received_at)
        batch = Batch(len(messages), [], started, list(routed.dead_letters))
        batch.skipped = [kind for _, kind in routed.skipped]
        for carried in routed.carried:
            ref = carried.message.ref
            batch.outputs.append(Output(s.labeled_topic, carried.key, carried.labeled, ref))
            batch.outputs.append(
                Output(s.geotagged_topic, carried.key, carried.geotagged, ref, carried.source)
            )
        if routed.to_predict:
            predict_started = time.perf_counter()
            predictions = await self._predict([post for _, post in routed.to_predict])
            batch.predict_seconds = time.perf_counter() - predict_started
            for (message, post), prediction in zip(routed.to_predict, predictions, strict=True):
                try:
                    if isinstance(prediction, Exception):
                        raise prediction
                    event = geotagged_event(message, post, prediction, received_at).to_bytes()
                except Exception as exc:  # this post breaks the model (or its event): its outcome
                    letter = dead_letter(
                        message,
                        "model-error",
                        exc,
                        f"{type(exc).__name__}: {exc}",
                        s.dead_letter_max_payload_bytes,
                    )
                    batch.dead_letters.append(letter)
                    continue
                key = post.id.encode()
                abstained = prediction.abstained
                batch.outputs.append(
                    Output(s.geotagged_topic, key, event, message.ref, "model", abstained)
                )
                batch.model_version = prediction.model_version
        self._bound(batch, {m.ref: m for m in messages})
        batch.outputs += [self._dead_letter_output(letter) for letter in batch.dead_letters]
        return batch

    def _bound(self, batch: Batch, inputs: dict[InputRef, Message]) -> None:
        """An input with an output over ``max_output_bytes`` (the broker would refuse it,
        and retrying cannot help) has all its outputs replaced by one bounded dead letter
        (``too-large``)."""
        limit = self.settings.max_output_bytes
        too_large = {o.input: o.size for o in batch.outputs if o.size > limit}
        if not too_large:
            return
        batch.outputs = [o for o in batch.outputs if o.input not in too_large]
        for ref, size in too_large.items():
            detail = f"an output of {size:,} bytes > max_output_bytes {limit:,}"
            error = ValueError(detail)
            letter = dead_letter(
                inputs[ref], "too-large", error, detail, self.settings.dead_letter_max_payload_bytes
            )
            batch.dead_letters.append(letter)

    def delivered(self, batch: Batch) -> None:
        """The batch's outputs are all acknowledged by the broker: count it, once, and the
        failures in a row (predictions or deliveries) end."""
        m = self.metrics
        m.posts_in.inc(batch.inputs)
        m.batch_size.observe(batch.inputs)
        m.batch_seconds.observe(time.perf_counter() - batch.started)
        for letter in batch.dead_letters:
            m.dead_letters.labels(reason=letter.reason).inc()
        for kind in batch.skipped:
            m.skipped.labels(kind=kind).inc()
        geotagged = batch.geotagged()
        for source, n in geotagged.items():
            m.posts_out.labels(source=source).inc(n)
        m.labeled.inc(sum(o.topic == self.settings.labeled_topic for o in batch.outputs))
        m.abstentions.inc(sum(o.abstained for o in batch.outputs))
        self.succeeded()
        log.info(
            "batch",
            inputs=batch.inputs,
            predicted=geotagged["model"],
            carried=geotagged["gps"] + geotagged["place"],
            dead_letters=len(batch.dead_letters),
            skipped=len(batch.skipped),
            model_version=batch.model_version or self.version,
            ms=round(1000 * (time.perf_counter() - batch.started), 1),
            predict_ms=round(1000 * batch.predict_seconds, 1),
        )

    def _dead_letter_output(self, letter: DeadLetter) -> Output:
        log.warning(
            "dead letter",
            reason=letter.reason,
            detail=letter.detail[:200],
            partition=letter.input.partition,
            offset=letter.input.offset,
        )
        key = letter.key.encode() if letter.key is not None else None
        return Output(self.settings.dead_letter_topic, key, letter.to_bytes(), letter.input)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.index.close()


def _location(c: Candidate) -> dict[str, Any]:
    return {
        "id": c.location_id,
        "name": c.name,
        "admin": c.admin,
        "country": c.country,
        "lat": c.lat,
        "lon": c.lon,
    }


def _probability(p: float) -> float:
    """float32 rounding can put exp(log p) a hair above 1."""
    return min(max(float(p), 0.0), 1.0)


def _area(area: Area | None) -> AreaProbability | None:
    if area is None:
        return None
    return AreaProbability(
        name=area.name, country=area.country, probability=_probability(area.probability)
    )


def geotagged_event(
    message: Message, post: Any, prediction: Prediction, received_at: datetime
) -> GeotaggedPost:
    return GeotaggedPost(
        post_id=post.id,
        source="model",
        location=EventLocation(**_location(prediction.location)) if prediction.location else None,
        score=_probability(prediction.score),
        abstained=prediction.abstained,
        candidates=[
            ScoredLocation(
                **_location(c),
                score=_probability(c.score),
                tlc=_probability(c.tlc),
                tlm=None if c.tlm is None else _probability(c.tlm),
            )
            for c in prediction.candidates
        ],
        admin=_area(prediction.admin),
        country=_area(prediction.country),
        model_version=prediction.model_version,
        posted_at=post.created_at,
        received_at=received_at,
        input=message.ref,
    )

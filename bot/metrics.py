"""Prometheus metrics for the daemon (one registry per daemon, so tests can run several and read them)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest

from bot.worker import InferenceWorker


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.messages_received = Counter("chatbot_messages_received", "Messages received", ["platform"], registry=r)
        self.messages_answered = Counter("chatbot_messages_answered", "Messages answered, by outcome",
                                         ["platform", "outcome"], registry=r)
        self.overloads = Counter("chatbot_overloads", "Requests refused because the queue was full", registry=r)
        self.errors = Counter("chatbot_errors", "Requests that failed", ["platform"], registry=r)
        self.queue_depth = Gauge("chatbot_queue_depth", "Requests waiting for the model", registry=r)
        self.batch_size = Histogram("chatbot_batch_size", "Requests decoded together",
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r)
        self.decode_seconds = Histogram("chatbot_decode_seconds", "Time of one batched decode",
                                        buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5), registry=r)
        self.reply_sources = Counter("chatbot_replies_by_source", "Replies by origin: the model's own words, "
                                     "or an answer from its answer bank", ["source"], registry=r)
        self.reloads = Counter("chatbot_model_reloads", "Model reloads, by result", ["result"], registry=r)
        self.delivery_retries = Counter("chatbot_delivery_retries", "Posts tried again, by why: the platform "
                                        "library's own retries (a 429 honoured, a 503, a dropped connection) and "
                                        "the outbox's", ["platform", "reason"], registry=r)
        self.delivery_failures = Counter("chatbot_delivery_failures", "Delivery attempts that failed after the "
                                         "platform library's retries (the outbox tries again unless the error is "
                                         "permanent); reason 'expired': replies given up as too old",
                                         ["platform", "reason"], registry=r)
        self.outbox_pending = Gauge("chatbot_outbox_pending", "Replies owed: accepted, not yet sent or given up",
                                    registry=r)
        self.model = Info("chatbot_model", "The model being served", registry=r)

    def received(self, platform: str) -> None:
        self.messages_received.labels(platform).inc()

    def outcome(self, platform: str, outcome: str) -> None:
        self.messages_answered.labels(platform, outcome).inc()
        if outcome == "overloaded":
            self.overloads.inc()
        elif outcome == "error":
            self.errors.labels(platform).inc()

    def watch(self, worker: InferenceWorker) -> None:
        self.queue_depth.set_function(worker.queue_depth)
        worker.on_batch.append(self._on_batch)
        worker.on_reload.append(lambda ok: self.reloads.labels("ok" if ok else "failed").inc())
        self.set_model(worker.version or "none")

    def set_model(self, version: str) -> None:
        self.model.info({"version": version})

    def _on_batch(self, size: int, seconds: float, sources: list[str]) -> None:
        self.batch_size.observe(size)
        self.decode_seconds.observe(seconds)
        for source in sources:
            self.reply_sources.labels(source).inc()

    def value(self, name: str, **labels: str) -> float:
        """One sample's current value (0 if never observed): what tests and /metrics readers see."""
        return self.registry.get_sample_value(name, labels) or 0.0

    def render(self) -> bytes:
        return generate_latest(self.registry)

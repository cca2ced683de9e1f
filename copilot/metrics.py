"""Prometheus metrics of one server process, served at /metrics."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """The counters and histograms the service updates; each app has its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.snippets = Counter("copilot_snippets_total", "Transcript snippets processed", ["speaker"],
                                registry=self.registry)
        self.latency = Histogram("copilot_snippet_seconds", "Time from receiving a snippet to its emits",
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.cues = Counter("copilot_cues_total", "Cues highlighted on final customer snippets", ["cue"],
                            registry=self.registry)
        self.suggestions = Counter("copilot_suggestions_total", "Suggestions shown and agents' feedback",
                                   ["action"], registry=self.registry)
        self.errors = Counter("copilot_errors_total", "Errors acknowledged to clients", ["code"],
                              registry=self.registry)
        self.conversations = Counter("copilot_conversations_total", "Conversations started", registry=self.registry)
        self.ingest = Counter("copilot_ingest_utterances_total", "Utterances from transcript sources, by source and "
                              "result (accepted, duplicate, ignored messages, or the error's code)",
                              ["source", "result"], registry=self.registry)
        self.connections = Counter("copilot_connections_total", "Socket.IO connections", ["result"],
                                   registry=self.registry)
        self.floor = Counter("copilot_floor_sent_total", "What the live floor sent to the leads' rooms: diff "
                             "messages, rows in them, alerts and raised hands", ["kind"], registry=self.registry)
        self.resolution = Histogram("copilot_emotional_resolution_rate", "Emotional resolution rate per conversation",
                                    buckets=(0.0, 0.25, 0.5, 0.75, 1.0), registry=self.registry)

        self.analytics_lag_events = Gauge("copilot_analytics_lag_events", "Logged events the analytics loader has "
                                          "not loaded yet", registry=self.registry)
        self.analytics_lag_seconds = Gauge("copilot_analytics_lag_seconds", "Age of the oldest logged event the "
                                           "analytics loader has not loaded yet (0 when caught up)",
                                           registry=self.registry)
        self.analytics_loaded = Counter("copilot_analytics_loaded_total", "Events loaded into the analytics store",
                                        registry=self.registry)
        self.analytics_lost = Counter("copilot_analytics_events_lost_total", "Events trimmed from the Redis "
                                      "stream before the analytics loader read them", registry=self.registry)
        self.analytics_errors = Counter("copilot_analytics_load_errors_total", "Analytics loader batches that "
                                        "failed (retried)", registry=self.registry)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)

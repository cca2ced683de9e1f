"""Transcript sources: the ingest contract (contract.py), applying a batch (ingest.py), one pure mapper per
speech-to-text source, and the REST endpoints (api.py). Every path ends in the same Ingest.apply."""
from __future__ import annotations

from copilot.sources.contract import MAX_UTTERANCES, Batch, Start, Utterance, in_order, parse_batch

__all__ = ["MAX_UTTERANCES", "Batch", "Start", "Utterance", "in_order", "parse_batch"]

"""The naive peer a team might write instead: a Flask-SocketIO server that, for each customer snippet, runs a
PyTorch transformers classifier and a sentence-transformers encoder (two forward passes, torch defaults), then a
brute-force cosine over every phrasing in the library. Same events, same replay, same measurement.

    python -m bench.naive_peer        (needs requirements-train.txt: torch, transformers, sentence-transformers)

The classifier's head is untrained (MiniLM weights + a fresh 28-way layer): its answers are meaningless but its
cost is exactly that of a fine-tuned MiniLM GoEmotions classifier, which is what we compare.
"""
from __future__ import annotations

import os

import torch
from flask import Flask, jsonify, request
from flask_socketio import SocketIO, emit
from sentence_transformers import SentenceTransformer
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from copilot.cues.train import base_model_dir
from copilot.library.files import load_library

app = Flask(__name__)
socketio = SocketIO(app, async_mode="threading", cors_allowed_origins=None)
folder = str(base_model_dir())
tokenizer = AutoTokenizer.from_pretrained(folder)
classifier = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=28).eval()
encoder = SentenceTransformer(folder, device="cpu")
library = [p for p in load_library() if p.status == "approved"]
library_vectors = encoder.encode([p.text for p in library], convert_to_tensor=True, normalize_embeddings=True)


@app.get("/readyz")
def readyz():
    return jsonify({"ok": True})


@socketio.on("connect", namespace="/copilot")
def connect(auth=None):
    return True


@socketio.on("conversation.start", namespace="/copilot")
def start(data):
    return {"ok": True, "conversation_id": data.get("conversation_id")}


@socketio.on("conversation.end", namespace="/copilot")
def end(data):
    return {"ok": True}


@socketio.on("transcript.snippet", namespace="/copilot")
def snippet(data):
    if data.get("speaker") != "customer":
        return {"ok": True}
    with torch.no_grad():
        inputs = tokenizer(data["text"], return_tensors="pt", truncation=True, max_length=128)
        probs = torch.sigmoid(classifier(**inputs).logits)[0]
        vector = encoder.encode(data["text"], convert_to_tensor=True, normalize_embeddings=True)
        best = torch.topk(library_vectors @ vector, 2).indices.tolist()
    emit("cue.highlight", {"conversation_id": data["conversation_id"], "snippet_id": data["snippet_id"],
                           "final": True, "cues": [{"label": int(i)} for i in torch.topk(probs, 2).indices],
                           "suggestions": [library[i].id for i in best]}, to=request.sid)
    return {"ok": True}


if __name__ == "__main__":
    socketio.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8100")), allow_unsafe_werkzeug=True,
                 log_output=False)

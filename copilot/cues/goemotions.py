"""Read the GoEmotions split files (text, label ids, comment id) into plain lists."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Example:
    """One GoEmotions comment with its gold label ids."""

    text: str
    labels: tuple[int, ...]


def read_labels(data_dir: Path) -> list[str]:
    """The 28 label names in id order, from emotions.txt."""
    return [line.strip() for line in (Path(data_dir) / "emotions.txt").read_text().splitlines() if line.strip()]


def read_split(data_dir: Path, split: str) -> list[Example]:
    """Read train, dev or test as a list of examples."""
    path = Path(data_dir) / f"{split}.tsv"
    with path.open(newline="", encoding="utf-8") as handle:
        rows = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [Example(row[0], tuple(int(i) for i in row[1].split(","))) for row in rows]

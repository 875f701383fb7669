"""Training and evaluation data: GLUE-style TSV files and plain sentence files."""

from __future__ import annotations

import csv
import random

import torch

# GLUE's column names for the text of single-sentence and sentence-pair tasks.
PAIR_COLUMNS = [("sentence1", "sentence2"), ("question1", "question2"), ("question", "sentence"),
                ("#1 String", "#2 String"), ("premise", "hypothesis")]


class Examples:
    """Texts (one sentence, or a pair) and optional labels (class ids or floats)."""

    def __init__(self, texts, labels=None):
        self.texts = texts  # list of str or (str, str)
        self.labels = labels  # list of int / float, or None

    def __len__(self):
        return len(self.texts)

    def subsample(self, n: int | None, seed: int) -> "Examples":
        if n is None or n >= len(self):
            return self
        idx = sorted(random.Random(seed).sample(range(len(self)), n))
        return Examples([self.texts[i] for i in idx], [self.labels[i] for i in idx] if self.labels else None)


def read_tsv(path: str, label_names: list | None = None, regression: bool = False, labels: bool = True) -> Examples:
    """A GLUE TSV: a header line naming the columns, a text column (`sentence`, or a pair of
    columns as in GLUE's pair tasks) and optionally a `label` column holding a label name from
    `label_names`, a class index, or (regression) a float."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows:
        raise ValueError(f"{path}: empty file")
    header = rows[0]
    col = {name: i for i, name in enumerate(header)}
    if "sentence" in col:
        text_of = lambda r: r[col["sentence"]]  # noqa: E731
    else:
        pair = next((p for p in PAIR_COLUMNS if p[0] in col and p[1] in col), None)
        if pair is None:
            raise ValueError(f"{path}: the header {header} has no sentence column (nor a GLUE pair)")
        text_of = lambda r: (r[col[pair[0]]], r[col[pair[1]]])  # noqa: E731
    texts, labels = [], [] if labels and "label" in col else None
    index = {n: i for i, n in enumerate(label_names or [])}
    for line_no, r in enumerate(rows[1:], 2):
        if len(r) != len(header):
            raise ValueError(f"{path}:{line_no}: {len(r)} columns, the header has {len(header)}")
        texts.append(text_of(r))
        if labels is not None:
            raw = r[col["label"]]
            if regression:
                labels.append(float(raw))
            elif raw in index:
                labels.append(index[raw])
            elif raw.isdigit() and (not label_names or int(raw) < len(label_names)):
                labels.append(int(raw))
            else:
                raise ValueError(f"{path}:{line_no}: label {raw!r} is neither a label name nor an index")
    return Examples(texts, labels)


def read_sentences(path: str) -> Examples:
    """Sentences for an embedding teacher: a TSV with a `sentence` column, or one per line."""
    with open(path, encoding="utf-8") as f:
        first = f.readline()
    if "\t" in first and "sentence" in first.rstrip("\n").split("\t"):
        return Examples(read_tsv(path, labels=False).texts)
    with open(path, encoding="utf-8") as f:
        return Examples([l.strip() for l in f if l.strip()])


def encode(tokenizer, examples: Examples, max_len: int) -> list:
    """Tokenizes every text once: a list of (ids, type_ids) lists, unpadded."""
    out = []
    for t in examples.texts:
        e = tokenizer(*t, truncation=True, max_length=max_len) if isinstance(t, tuple) else tokenizer(
            t, truncation=True, max_length=max_len
        )
        out.append((e["input_ids"], e.get("token_type_ids") or [0] * len(e["input_ids"])))
    return out


def batches(encoded: list, labels, batch_size: int, shuffle: bool, seed: int = 0, pad_id: int = 0):
    """Yields (ids, type_ids, mask, labels or None, indices) padded to the batch's longest."""
    order = list(range(len(encoded)))
    if shuffle:
        # Shuffle, then sort each window of 50 batches by length: batches of similar lengths
        # waste little on padding, and their order stays random.
        rng = random.Random(seed)
        rng.shuffle(order)
        w = 50 * batch_size
        order = [i for s in range(0, len(order), w) for i in sorted(order[s : s + w], key=lambda i: len(encoded[i][0]))]
        starts = list(range(0, len(order), batch_size))
        rng.shuffle(starts)
        order = [i for s in starts for i in order[s : s + batch_size]]
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        n = max(len(encoded[i][0]) for i in idx)
        ids = torch.full((len(idx), n), pad_id, dtype=torch.long)
        types = torch.zeros((len(idx), n), dtype=torch.long)
        mask = torch.zeros((len(idx), n), dtype=torch.long)
        for row, i in enumerate(idx):
            a, t = encoded[i]
            ids[row, : len(a)] = torch.tensor(a)
            types[row, : len(t)] = torch.tensor(t)
            mask[row, : len(a)] = 1
        y = None
        if labels is not None:
            y = torch.tensor([labels[i] for i in idx])
        yield ids, types, mask, y, idx

"""A BERT encoder in PyTorch whose attention softmax is exact or SecFormer's 2Quad.

Parameter names are Hugging Face's (`embeddings.word_embeddings.weight`,
`encoder.layer.0.attention.self.query.weight`, ..., `pooler.dense.weight`, `classifier.weight`),
so a checkpoint's `model.safetensors` loads into it and a student written from it loads in
Hugging Face and in secformer. The computation is the one secformer runs (post-LayerNorm
layers, exact erf GeLU, mean or CLS pooling); it is written out here rather than patched into
`transformers.BertModel` so that the pre-softmax scores and every hidden state are at hand for
the distillation losses and the 2Quad attention is exactly the one the secure protocol computes:

    2Quad(x)_j = (x_j + c)^2 / sum_k (x_k + c)^2     over the unmasked keys k (masked keys: 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn
import torch.nn.functional as F


@dataclass
class BertShape:
    """The hyper-parameters of `config.json` that the forward pass needs."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    softmax: str = "exact"  # "exact" or "2quad"
    quad_c: float = 5.0
    num_labels: int | None = None  # a classifier (pooler + classifier head) when set
    extra: dict = field(default_factory=dict)

    @staticmethod
    def from_config(cfg: dict) -> "BertShape":
        """Reads a Hugging Face `config.json` dictionary (secformer keys included)."""
        if cfg.get("model_type") != "bert":
            raise ValueError(f"config.json: model_type {cfg.get('model_type')!r} is not 'bert'")
        if cfg.get("hidden_act", "gelu") != "gelu":
            raise ValueError(f"config.json: hidden_act {cfg['hidden_act']!r} (only the exact 'gelu')")
        if cfg.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError("config.json: only absolute position embeddings are supported")
        softmax = cfg.get("secformer_softmax", "exact")
        if softmax not in ("exact", "2quad"):
            raise ValueError(f"config.json: secformer_softmax {softmax!r} (exact or 2quad)")
        classifier = "BertForSequenceClassification" in (cfg.get("architectures") or [])
        return BertShape(
            vocab_size=cfg["vocab_size"],
            hidden_size=cfg["hidden_size"],
            num_hidden_layers=cfg["num_hidden_layers"],
            num_attention_heads=cfg["num_attention_heads"],
            intermediate_size=cfg["intermediate_size"],
            max_position_embeddings=cfg["max_position_embeddings"],
            type_vocab_size=cfg.get("type_vocab_size", 2),
            layer_norm_eps=cfg.get("layer_norm_eps", 1e-12),
            hidden_dropout_prob=cfg.get("hidden_dropout_prob", 0.1),
            attention_probs_dropout_prob=cfg.get("attention_probs_dropout_prob", 0.1),
            softmax=softmax,
            quad_c=float(cfg.get("secformer_2quad_c", 5.0)),
            num_labels=(len(cfg["id2label"]) if cfg.get("id2label") else cfg.get("num_labels", 2))
            if classifier
            else None,
        )


def attention_probs(scores: torch.Tensor, key_mask: torch.Tensor, softmax: str, c: float) -> torch.Tensor:
    """Softmax of `scores` (`... x keys`) over the keys where `key_mask` (broadcastable bool) is
    true; masked keys get probability 0."""
    if softmax == "exact":
        return torch.softmax(scores.masked_fill(~key_mask, float("-inf")), dim=-1).masked_fill(~key_mask, 0.0)
    if softmax == "2quad":
        q = ((scores + c) ** 2).masked_fill(~key_mask, 0.0)
        return q / q.sum(dim=-1, keepdim=True).clamp_min(1e-12)
    raise ValueError(f"unknown softmax {softmax!r}")


class SelfAttention(nn.Module):
    def __init__(self, s: BertShape):
        super().__init__()
        h = s.hidden_size
        self.query, self.key, self.value = nn.Linear(h, h), nn.Linear(h, h), nn.Linear(h, h)
        self.heads = s.num_attention_heads
        self.drop = nn.Dropout(s.attention_probs_dropout_prob)

    def forward(self, x, key_mask, softmax, c):
        b, n, h = x.shape
        d = h // self.heads

        def split(t):
            return t.view(b, n, self.heads, d).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d)
        probs = self.drop(attention_probs(scores, key_mask, softmax, c))
        ctx = (probs @ v).transpose(1, 2).reshape(b, n, h)
        return ctx, scores


class Layer(nn.Module):
    """One post-LayerNorm encoder layer, named as in Hugging Face's `BertLayer`."""

    def __init__(self, s: BertShape):
        super().__init__()
        h, i = s.hidden_size, s.intermediate_size
        self.attention = nn.Module()
        self.attention.self = SelfAttention(s)
        self.attention.output = nn.Module()
        self.attention.output.dense = nn.Linear(h, h)
        self.attention.output.LayerNorm = nn.LayerNorm(h, eps=s.layer_norm_eps)
        self.intermediate = nn.Module()
        self.intermediate.dense = nn.Linear(h, i)
        self.output = nn.Module()
        self.output.dense = nn.Linear(i, h)
        self.output.LayerNorm = nn.LayerNorm(h, eps=s.layer_norm_eps)
        self.drop = nn.Dropout(s.hidden_dropout_prob)

    def forward(self, x, key_mask, softmax, c):
        ctx, scores = self.attention.self(x, key_mask, softmax, c)
        a = self.attention.output.LayerNorm(self.drop(self.attention.output.dense(ctx)) + x)
        f = self.output.dense(F.gelu(self.intermediate.dense(a)))
        return self.output.LayerNorm(self.drop(f) + a), scores


class Embeddings(nn.Module):
    def __init__(self, s: BertShape):
        super().__init__()
        h = s.hidden_size
        self.word_embeddings = nn.Embedding(s.vocab_size, h)
        self.position_embeddings = nn.Embedding(s.max_position_embeddings, h)
        self.token_type_embeddings = nn.Embedding(s.type_vocab_size, h)
        self.LayerNorm = nn.LayerNorm(h, eps=s.layer_norm_eps)
        self.drop = nn.Dropout(s.hidden_dropout_prob)

    def forward(self, ids, type_ids):
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = self.word_embeddings(ids) + self.position_embeddings(pos)[None] + self.token_type_embeddings(type_ids)
        return self.drop(self.LayerNorm(x))


@dataclass
class BertOutput:
    """Everything the losses and the metrics use."""

    hidden_states: list  # embeddings output, then each layer's output: batch x tokens x hidden
    scores: list  # per layer, the pre-softmax scores: batch x heads x tokens x tokens
    pooled: torch.Tensor  # mean-pooled (embedding model) or pooler output (classifier)
    logits: torch.Tensor | None


class Bert(nn.Module):
    """BERT encoder + mean pooling (sentence embedding) or pooler + classifier."""

    def __init__(self, s: BertShape):
        super().__init__()
        self.shape = s
        self.embeddings = Embeddings(s)
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList(Layer(s) for _ in range(s.num_hidden_layers))
        self.pooler = nn.Module()
        self.pooler.dense = nn.Linear(s.hidden_size, s.hidden_size)
        self.classifier = nn.Linear(s.hidden_size, s.num_labels) if s.num_labels else None
        self.drop = nn.Dropout(s.hidden_dropout_prob)

    def forward(self, ids, type_ids, mask) -> BertOutput:
        """`ids`, `type_ids`: batch x tokens (long); `mask`: batch x tokens (1 = token)."""
        s = self.shape
        key_mask = mask.bool()[:, None, None, :]
        x = self.embeddings(ids, type_ids)
        hidden, scores = [x], []
        for layer in self.encoder.layer:
            x, sc = layer(x, key_mask, s.softmax, s.quad_c)
            hidden.append(x)
            scores.append(sc)
        if self.classifier is not None:
            pooled = torch.tanh(self.pooler.dense(x[:, 0]))
            logits = self.classifier(self.drop(pooled))
        else:
            m = mask.to(x.dtype)[..., None]
            pooled = (x * m).sum(1) / m.sum(1).clamp_min(1.0)
            logits = None
        return BertOutput(hidden, scores, pooled, logits)

    def hf_state_dict(self) -> dict:
        """The parameters under Hugging Face's names (`bert.` prefix for a classifier's
        encoder, as `BertForSequenceClassification` writes them)."""
        out = {}
        for k, v in self.state_dict().items():
            if self.classifier is None:
                if k.startswith("classifier."):
                    continue
                out[k] = v
            else:
                out[k if k.startswith("classifier.") else "bert." + k] = v
        return out

    def load_hf_state_dict(self, sd: dict, strict_head: bool = True) -> list:
        """Loads Hugging Face tensors (with or without the `bert.` prefix); returns the names
        of this model's parameters that the checkpoint did not have (e.g. a fresh head)."""
        own = self.state_dict()
        clean = {}
        for k, v in sd.items():
            k2 = k[5:] if k.startswith("bert.") else k
            if k2 in own:
                if own[k2].shape != v.shape:
                    raise ValueError(f"tensor {k}: shape {tuple(v.shape)}, expected {tuple(own[k2].shape)}")
                clean[k2] = v.to(own[k2].dtype)
        missing = [k for k in own if k not in clean]
        if strict_head:
            body = [k for k in missing if not k.startswith(("pooler.", "classifier."))]
            if body:
                raise ValueError(f"the checkpoint lacks {len(body)} encoder tensors, e.g. {body[0]}")
        self.load_state_dict(clean, strict=False)
        return missing

"""Reading and writing Hugging Face checkpoint directories (config, weights, tokenizer)."""

from __future__ import annotations

import json
import os
import shutil

import torch
from safetensors.torch import load_file, save_file

from .bert import Bert, BertShape

# Files copied from the teacher next to the student's config and weights: the tokenizer, and
# the sentence-transformers modules (pooling, normalisation, maximum length) of an
# embedding model.
TOKENIZER_FILES = ["vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]
SENTENCE_FILES = [
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    os.path.join("1_Pooling", "config.json"),
]


def read_config(model_dir: str) -> dict:
    path = os.path.join(model_dir, "config.json")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def load_model(model_dir: str, num_labels_if_new: int | None = None, softmax: str | None = None):
    """Loads a checkpoint into a `Bert`. `num_labels_if_new` turns an encoder into a classifier
    with a fresh head (the pooler is kept if the checkpoint has one). `softmax` overrides the
    config's. Returns (model, config dict, names of freshly initialised parameters)."""
    cfg = read_config(model_dir)
    shape = BertShape.from_config(cfg)
    if num_labels_if_new is not None:
        shape.num_labels = num_labels_if_new
    if softmax is not None:
        shape.softmax = softmax
    model = Bert(shape)
    init_weights(model)
    path = os.path.join(model_dir, "model.safetensors")
    if os.path.exists(path):
        sd = load_file(path)
    else:
        bin_path = os.path.join(model_dir, "pytorch_model.bin")
        if not os.path.exists(bin_path):
            raise FileNotFoundError(f"{model_dir} has neither model.safetensors nor pytorch_model.bin")
        sd = torch.load(bin_path, map_location="cpu", weights_only=True)
    missing = model.load_hf_state_dict(sd)
    return model, cfg, missing


def init_weights(model: Bert, std: float = 0.02, seed: int | None = None) -> None:
    """BERT's initialisation: normal(0, 0.02) weights, zero biases, unit LayerNorm."""
    g = torch.Generator().manual_seed(seed) if seed is not None else None
    for name, p in model.named_parameters():
        with torch.no_grad():
            if "LayerNorm" in name:
                p.fill_(1.0 if name.endswith("weight") else 0.0)
            elif name.endswith("bias"):
                p.zero_()
            else:
                p.copy_(torch.randn(p.shape, generator=g) * std)


def save_model(
    model: Bert,
    out_dir: str,
    base_config: dict,
    source_dir: str,
    dtype: torch.dtype = torch.float16,
    labels: list | None = None,
    extra_config: dict | None = None,
) -> None:
    """Writes `out_dir` in the Hugging Face layout: config.json (the source's, with the
    student's softmax and head), model.safetensors in `dtype`, and the tokenizer and
    sentence-transformers files of `source_dir`."""
    os.makedirs(out_dir, exist_ok=True)
    s = model.shape
    cfg = dict(base_config)
    cfg.pop("_name_or_path", None)
    cfg["secformer_softmax"] = s.softmax
    if s.softmax == "2quad":
        cfg["secformer_2quad_c"] = s.quad_c
    else:
        cfg.pop("secformer_2quad_c", None)
    if s.num_labels:
        labels = labels or [f"LABEL_{i}" for i in range(s.num_labels)]
        cfg["architectures"] = ["BertForSequenceClassification"]
        cfg["num_labels"] = len(labels)
        cfg["id2label"] = {str(i): l for i, l in enumerate(labels)}
        cfg["label2id"] = {l: i for i, l in enumerate(labels)}
    cfg["torch_dtype"] = {torch.float16: "float16", torch.float32: "float32"}.get(dtype, str(dtype))
    cfg.update(extra_config or {})
    with open(os.path.join(out_dir, "config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    sd = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.hf_state_dict().items()}
    save_file(sd, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    os.chmod(os.path.join(out_dir, "model.safetensors"), 0o644)
    files = TOKENIZER_FILES + ([] if s.num_labels else SENTENCE_FILES)
    for name in files:
        src = os.path.join(source_dir, name)
        if os.path.exists(src) and os.path.abspath(src) != os.path.abspath(os.path.join(out_dir, name)):
            os.makedirs(os.path.dirname(os.path.join(out_dir, name)), exist_ok=True)
            shutil.copyfile(src, os.path.join(out_dir, name))

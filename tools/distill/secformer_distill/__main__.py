"""secformer-distill: fine-tune a BERT teacher and distil it into a 2Quad student.

    python -m secformer_distill finetune --base DIR --train T.tsv --dev D.tsv --labels L.txt --out DIR
    python -m secformer_distill distill --teacher DIR --train T.tsv [--dev D.tsv] --out DIR
    python -m secformer_distill evaluate --model DIR --data D.tsv [--softmax exact|2quad]
    python -m secformer_distill random-bert --out DIR [--classes N]

Run from tools/distill (or with it on PYTHONPATH). CPU by default, the GPU when one is there
(`--device` overrides). Every command prints its progress to stderr and a JSON summary on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

from . import checkpoint, data, train
from .bert import Bert, BertShape


def common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda if available, else cpu)")
    p.add_argument("--threads", type=int, help="CPU threads for PyTorch (default: PyTorch's)")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--max-len", type=int, default=128, help="tokens per text (SecFormer: 128)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--eval-batch-size", type=int, default=128)
    p.add_argument("--max-steps", type=int, help="stop each stage after this many steps")
    p.add_argument("--eval-every", type=int, default=200, help="dev evaluation every N steps")
    p.add_argument("--log-every", type=int, default=20)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup", type=float, default=0.1, help="warmup fraction of each stage")
    p.add_argument("--train-word-embeddings", action="store_true",
                   help="also train the word-embedding table (frozen by default)")
    p.add_argument("--dtype", choices=["f16", "f32"], default="f16", help="dtype of the written weights")


def labels_of(path: str | None, cfg: dict | None = None) -> list | None:
    if path:
        with open(path, encoding="utf-8") as f:
            return [l.strip() for l in f if l.strip()]
    if cfg and cfg.get("id2label"):
        return [cfg["id2label"][str(i)] for i in range(len(cfg["id2label"]))]
    return None


def tokenizer_of(model_dir: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


def setup(a) -> torch.device:
    torch.manual_seed(a.seed)
    if a.threads:
        torch.set_num_threads(a.threads)
    device = train.pick_device(a.device)
    print(f"device {device}, {torch.get_num_threads()} threads, torch {torch.__version__}", file=sys.stderr)
    return device


def cmd_finetune(a) -> dict:
    device = setup(a)
    labels = labels_of(a.labels)
    regression = a.regression
    n_labels = 1 if regression else len(labels)
    model, cfg, fresh = checkpoint.load_model(a.base, num_labels_if_new=n_labels)
    model.shape.softmax = "exact"
    print(f"fresh parameters: {fresh}", file=sys.stderr)
    tok = tokenizer_of(a.base)
    tr = data.read_tsv(a.train, labels, regression).subsample(a.max_train, a.seed)
    dv = data.read_tsv(a.dev, labels, regression).subsample(a.max_dev, a.seed) if a.dev else None
    tr_enc = data.encode(tok, tr, a.max_len)
    dv_enc = data.encode(tok, dv, a.max_len) if dv else None
    log = train.Log(a.log_every)
    t0 = time.time()
    s = train.finetune(model, tr_enc, tr.labels, dv_enc, dv.labels if dv else None, a, device, tok.pad_token_id, log)
    s.update(command=" ".join(sys.argv), train_examples=len(tr), dev_examples=len(dv) if dv else 0,
             epochs=a.epochs, lr=a.lr, batch_size=a.batch_size, seconds=round(time.time() - t0, 1),
             device=str(device), threads=torch.get_num_threads())
    dtype = torch.float16 if a.dtype == "f16" else torch.float32
    checkpoint.save_model(model, a.out, cfg, a.base, dtype, labels=None if regression else labels)
    train.write_summary(a.out, s, log)
    return s


def cmd_distill(a) -> dict:
    device = setup(a)
    teacher, cfg, _ = checkpoint.load_model(a.teacher)
    if teacher.shape.softmax != "exact":
        print("warning: the teacher already uses 2Quad", file=sys.stderr)
    student = Bert(BertShape(**{**teacher.shape.__dict__, "softmax": "2quad", "quad_c": a.c}))
    student.load_state_dict(teacher.state_dict())
    if a.student_init:
        init, _, _ = checkpoint.load_model(a.student_init)
        if init.shape.softmax != "2quad":
            raise SystemExit(f"--student-init {a.student_init} is not a 2Quad checkpoint")
        student.load_state_dict(init.state_dict())
        print(f"student initialised from {a.student_init}", file=sys.stderr)
    tok = tokenizer_of(a.teacher)
    labels = labels_of(None, cfg)
    embed = teacher.classifier is None
    if embed:
        tr = data.read_sentences(a.train)
        dv = data.read_sentences(a.dev) if a.dev else None
        dv_y = None
    else:
        tr = data.read_tsv(a.train, labels)  # the labels are not used: the teacher's logits are
        dv = data.read_tsv(a.dev, labels) if a.dev else None
    tr = tr.subsample(a.max_train, a.seed)
    dv = dv.subsample(a.max_dev, a.seed) if dv else None
    dv_y = dv.labels if dv and not embed else None
    tr_enc = data.encode(tok, tr, a.max_len)
    dv_enc = data.encode(tok, dv, a.max_len) if dv else None
    log = train.Log(a.log_every)
    t0 = time.time()
    s = train.distill(student, teacher, tr_enc, dv_enc, dv_y, a, device, tok.pad_token_id, log)
    s.update(command=" ".join(sys.argv), train_examples=len(tr), dev_examples=len(dv) if dv else 0,
             c=a.c, batch_size=a.batch_size, seconds=round(time.time() - t0, 1), device=str(device),
             threads=torch.get_num_threads())
    dtype = torch.float16 if a.dtype == "f16" else torch.float32
    checkpoint.save_model(student, a.out, cfg, a.teacher, dtype, labels=labels)
    train.write_summary(a.out, s, log)
    return s


def cmd_evaluate(a) -> dict:
    device = setup(a)
    model, cfg, _ = checkpoint.load_model(a.model, softmax=a.softmax)
    tok = tokenizer_of(a.model)
    ex = data.read_tsv(a.data, labels_of(None, cfg)).subsample(a.limit, a.seed)
    enc = data.encode(tok, ex, a.max_len)
    score = train.accuracy(model.to(device), enc, ex.labels, a.eval_batch_size, device, tok.pad_token_id)
    return {"model": a.model, "softmax": model.shape.softmax, "examples": len(ex), "accuracy": score}


def cmd_random_bert(a) -> dict:
    """A tiny random BERT checkpoint (CI): vocabulary from the words of --text-file."""
    from transformers import BertTokenizerFast

    torch.manual_seed(a.seed)
    words = set()
    with open(a.text_file, encoding="utf-8") as f:
        for line in f:
            words.update(w.strip(".,;:()\"'").lower() for w in line.split())
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(w for w in words if w and "\t" not in w)
    vocab += [chr(c) for c in range(ord("a"), ord("z") + 1) if chr(c) not in words]
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(vocab) + "\n")
    BertTokenizerFast(os.path.join(a.out, "vocab.txt")).save_pretrained(a.out)
    cfg = {
        "model_type": "bert", "architectures": ["BertModel"], "vocab_size": len(vocab), "hidden_size": a.hidden,
        "num_hidden_layers": a.layers, "num_attention_heads": a.heads, "intermediate_size": 4 * a.hidden,
        "max_position_embeddings": 64, "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "pad_token_id": 0,
    }
    model = Bert(BertShape.from_config(cfg))
    checkpoint.init_weights(model, seed=a.seed)
    checkpoint.save_model(model, a.out, cfg, a.out, torch.float32)
    return {"out": a.out, "vocab": len(vocab)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m secformer_distill", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    f = sub.add_parser("finetune", help="fine-tune an encoder + classification head (exact softmax)")
    f.add_argument("--base", required=True, help="Hugging Face BERT directory (e.g. all-MiniLM-L6-v2)")
    f.add_argument("--train", required=True, help="GLUE-style TSV")
    f.add_argument("--dev", help="GLUE-style TSV for choosing the best checkpoint")
    f.add_argument("--labels", help="label names, one per line, in id order")
    f.add_argument("--regression", action="store_true", help="one float label (Pearson on dev)")
    f.add_argument("--out", required=True)
    f.add_argument("--epochs", type=float, default=3.0)
    f.add_argument("--lr", type=float, default=1e-4)
    f.add_argument("--max-train", type=int, help="random subsample of the training set")
    f.add_argument("--max-dev", type=int)
    common(f)

    d = sub.add_parser("distill", help="distil a teacher into a 2Quad student")
    d.add_argument("--teacher", required=True, help="classifier or sentence-transformers directory")
    d.add_argument("--train", required=True, help="GLUE-style TSV (classifier) or sentences (embedding)")
    d.add_argument("--dev", help="dev TSV / sentences for choosing the best checkpoint")
    d.add_argument("--out", required=True)
    d.add_argument("--c", type=float, default=5.0, help="the 2Quad shift c")
    d.add_argument("--student-init", help="continue from this 2Quad student instead of the teacher's weights")
    d.add_argument("--stage1-epochs", type=float, default=1.0)
    d.add_argument("--stage1-lr", type=float, default=5e-5)
    d.add_argument("--stage2-epochs", type=float, default=5.0)
    d.add_argument("--stage2-lr", type=float, default=1e-5)
    d.add_argument("--attn-weight", type=float, default=1.0)
    d.add_argument("--hidden-weight", type=float, default=1.0)
    d.add_argument("--cos-weight", type=float, default=1.0, help="weight of 1 - cosine (embedding mode)")
    d.add_argument("--dropout", action="store_true", help="train the student with dropout (off by default)")
    d.add_argument("--max-train", type=int)
    d.add_argument("--max-dev", type=int)
    common(d)

    e = sub.add_parser("evaluate", help="plaintext accuracy of a classifier in PyTorch")
    e.add_argument("--model", required=True)
    e.add_argument("--data", required=True)
    e.add_argument("--softmax", choices=["exact", "2quad"])
    e.add_argument("--limit", type=int)
    common(e)

    r = sub.add_parser("random-bert", help="write a tiny random BERT (for tests)")
    r.add_argument("--out", required=True)
    r.add_argument("--text-file", required=True, help="texts whose words make the vocabulary")
    r.add_argument("--hidden", type=int, default=32)
    r.add_argument("--layers", type=int, default=2)
    r.add_argument("--heads", type=int, default=2)
    r.add_argument("--seed", type=int, default=13)

    a = p.parse_args(argv)
    out = {"finetune": cmd_finetune, "distill": cmd_distill, "evaluate": cmd_evaluate,
           "random-bert": cmd_random_bert}[a.cmd](a)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

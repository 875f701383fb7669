"""Fine-tuning a teacher and distilling a 2Quad student.

Classification teachers (a `BertForSequenceClassification` checkpoint), as in SecFormer:

* stage 1: MSE between the student's and the teacher's pre-softmax attention scores of every
  layer (entries of padded queries or keys left out) plus MSE between their hidden states (the
  embeddings' output and every layer's output, padded tokens left out);
* stage 2: soft cross-entropy between the student's and the teacher's logits (MSE to the gold
  value for a regression task); the checkpoint with the best dev score is kept.

Embedding teachers (sentence-transformers): the stage-1 losses plus 1 - cosine between the
student's and the teacher's pooled embeddings, keeping the checkpoint whose dev embeddings are
closest to the teacher's.

The student starts as a copy of the teacher with the softmax replaced by 2Quad.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time

import torch
import torch.nn.functional as F

from . import data
from .bert import Bert


def pick_device(name: str | None) -> torch.device:
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def optimizer(model: Bert, lr: float, weight_decay: float, train_word_embeddings: bool):
    """AdamW, no decay on biases and LayerNorm; word embeddings frozen unless asked."""
    model.embeddings.word_embeddings.weight.requires_grad_(train_word_embeddings)
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if n.endswith("bias") or "LayerNorm" in n else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr)


def linear_schedule(opt, total: int, warmup_ratio: float):
    warm = max(1, int(total * warmup_ratio))

    def f(step):
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (total - step) / max(1, total - warm))

    return torch.optim.lr_scheduler.LambdaLR(opt, f)


def masked_mse(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of (a - b)^2 over the entries where `mask` (broadcastable to a) is true."""
    m = mask.to(a.dtype).expand_as(a)
    return ((a - b) ** 2 * m).sum() / m.sum().clamp_min(1.0)


def stage1_loss(s_out, t_out, mask: torch.Tensor) -> tuple:
    """(attention-score MSE summed over layers, hidden-state MSE summed over states)."""
    tok = mask.bool()
    pair = (tok[:, :, None] & tok[:, None, :])[:, None]  # batch x 1 x queries x keys
    attn = sum(masked_mse(s, t, pair) for s, t in zip(s_out.scores, t_out.scores))
    hid = sum(masked_mse(s, t, tok[..., None]) for s, t in zip(s_out.hidden_states, t_out.hidden_states))
    return attn, hid


def soft_cross_entropy(student_logits, teacher_logits):
    return -(F.softmax(teacher_logits, -1) * F.log_softmax(student_logits, -1)).sum(-1).mean()


@torch.no_grad()
def predict(model: Bert, encoded, batch_size: int, device, pad_id: int):
    """Logits (classifier) or pooled embeddings for every encoded text, in order."""
    model.eval()
    out = [None] * len(encoded)
    for ids, types, mask, _, idx in data.batches(encoded, None, batch_size, False, pad_id=pad_id):
        o = model(ids.to(device), types.to(device), mask.to(device))
        v = o.logits if o.logits is not None else o.pooled
        for row, i in enumerate(idx):
            out[i] = v[row].float().cpu()
    return torch.stack(out)


def accuracy(model, encoded, labels, batch_size, device, pad_id) -> float:
    logits = predict(model, encoded, batch_size, device, pad_id)
    if logits.shape[1] == 1:  # regression: Pearson correlation
        x, y = logits[:, 0].double(), torch.tensor(labels, dtype=torch.float64)
        x, y = x - x.mean(), y - y.mean()
        return float((x * y).sum() / (x.norm() * y.norm()).clamp_min(1e-12))
    return float((logits.argmax(-1) == torch.tensor(labels)).double().mean())


def mean_cosine(student, teacher_emb, encoded, batch_size, device, pad_id) -> float:
    emb = predict(student, encoded, batch_size, device, pad_id)
    return float(F.cosine_similarity(emb, teacher_emb, dim=-1).mean())


class Log:
    """Prints progress lines to stderr and keeps them for training.json."""

    def __init__(self, every: int):
        self.every, self.rows, self.t0 = every, [], time.time()

    def step(self, stage, step, total, **losses):
        row = {"stage": stage, "step": step, "seconds": round(time.time() - self.t0, 1)}
        row.update({k: round(float(v), 6) for k, v in losses.items()})
        self.rows.append(row)
        if step % self.every == 0 or step == total:
            parts = " ".join(f"{k} {v:.4f}" for k, v in losses.items())
            print(f"[{row['seconds']:7.1f}s] {stage} step {step}/{total} {parts}", flush=True)

    def note(self, msg):
        print(f"[{time.time() - self.t0:7.1f}s] {msg}", flush=True)


def steps_for(n_examples: int, batch_size: int, epochs: float, max_steps: int | None) -> int:
    total = math.ceil(n_examples / batch_size * epochs)
    return min(total, max_steps) if max_steps else total


def cycle_batches(encoded, labels, batch_size, seed, pad_id):
    epoch = 0
    while True:
        yield from data.batches(encoded, labels, batch_size, True, seed + epoch, pad_id)
        epoch += 1


def finetune(model: Bert, train_enc, train_y, dev_enc, dev_y, a, device, pad_id, log: Log) -> dict:
    """Fine-tunes a classifier with cross-entropy (MSE for regression); keeps the best dev."""
    model.to(device)
    total = steps_for(len(train_enc), a.batch_size, a.epochs, a.max_steps)
    opt = optimizer(model, a.lr, a.weight_decay, a.train_word_embeddings)
    sched = linear_schedule(opt, total, a.warmup)
    best, best_state, it = -math.inf, None, cycle_batches(train_enc, train_y, a.batch_size, a.seed, pad_id)
    for step in range(1, total + 1):
        model.train()
        ids, types, mask, y, _ = next(it)
        out = model(ids.to(device), types.to(device), mask.to(device))
        if out.logits.shape[1] == 1:
            loss = F.mse_loss(out.logits[:, 0], y.float().to(device))
        else:
            loss = F.cross_entropy(out.logits, y.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        log.step("finetune", step, total, loss=loss.item())
        if dev_enc and (step % a.eval_every == 0 or step == total):
            score = accuracy(model, dev_enc, dev_y, a.eval_batch_size, device, pad_id)
            log.note(f"dev score {score:.4f} at step {step}")
            if score > best:
                best, best_state = score, copy.deepcopy(model.state_dict())
    if best_state is not None:
        model.load_state_dict(best_state)
    return {"steps": total, "best_dev": best if best_state is not None else None}


def distill(student: Bert, teacher: Bert, train_enc, dev_enc, dev_y, a, device, pad_id, log: Log) -> dict:
    """Runs the distillation stages on `student` in place; returns a summary."""
    student.to(device)
    teacher.to(device).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    embed = student.classifier is None
    summary = {"mode": "embedding" if embed else "classification"}
    teacher_dev = predict(teacher, dev_enc, a.eval_batch_size, device, pad_id) if dev_enc and embed else None

    def dev_score():
        if not dev_enc:
            return None
        if embed:
            return mean_cosine(student, teacher_dev, dev_enc, a.eval_batch_size, device, pad_id)
        return accuracy(student, dev_enc, dev_y, a.eval_batch_size, device, pad_id)

    if dev_enc:
        summary["dev_before"] = dev_score()
        log.note(f"dev score before distillation (teacher weights, 2Quad): {summary['dev_before']:.4f}")
    if not embed and dev_enc:
        summary["teacher_dev"] = accuracy(teacher, dev_enc, dev_y, a.eval_batch_size, device, pad_id)
        log.note(f"teacher dev score: {summary['teacher_dev']:.4f}")

    stages = [("stage1", a.stage1_epochs, a.stage1_lr)]
    if not embed:
        stages.append(("stage2", a.stage2_epochs, a.stage2_lr))
    best, best_state = -math.inf, None
    for stage, epochs, lr in stages:
        total = steps_for(len(train_enc), a.batch_size, epochs, a.max_steps)
        if total == 0:
            continue
        opt = optimizer(student, lr, a.weight_decay, a.train_word_embeddings)
        sched = linear_schedule(opt, total, a.warmup)
        it = cycle_batches(train_enc, None, a.batch_size, a.seed + (0 if stage == "stage1" else 1000), pad_id)
        losses = []
        for step in range(1, total + 1):
            student.train() if a.dropout else student.eval()
            ids, types, mask, _, _ = next(it)
            ids, types, mask = ids.to(device), types.to(device), mask.to(device)
            with torch.no_grad():
                t_out = teacher(ids, types, mask)
            s_out = student(ids, types, mask)
            parts = {}
            if stage == "stage1":
                parts["attn"], parts["hidden"] = stage1_loss(s_out, t_out, mask)
                if embed:
                    parts["cos"] = (1 - F.cosine_similarity(s_out.pooled, t_out.pooled, dim=-1)).mean()
            elif s_out.logits.shape[1] == 1:
                raise NotImplementedError("regression stage 2 needs gold labels: use finetune")
            else:
                parts["soft_ce"] = soft_cross_entropy(s_out.logits, t_out.logits)
            loss = sum(w * parts[k] for k, w in loss_weights(a, embed).items() if k in parts)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
            log.step(stage, step, total, loss=loss.item(), **{k: v.item() for k, v in parts.items()})
            last_stage = stage == stages[-1][0]
            if dev_enc and last_stage and (step % a.eval_every == 0 or step == total):
                score = dev_score()
                log.note(f"dev score {score:.4f} at {stage} step {step}")
                if score > best:
                    best, best_state = score, copy.deepcopy(student.state_dict())
        k = max(1, min(10, len(losses) // 4))
        summary[stage] = {
            "steps": total,
            "lr": lr,
            "loss_first": sum(losses[:k]) / k,
            "loss_last": sum(losses[-k:]) / k,
        }
    if best_state is not None:
        student.load_state_dict(best_state)
        summary["best_dev"] = best
    return summary


def loss_weights(a, embed: bool) -> dict:
    w = {"attn": a.attn_weight, "hidden": a.hidden_weight, "soft_ce": 1.0}
    if embed:
        w["cos"] = a.cos_weight
    return w


def write_summary(out_dir: str, summary: dict, log: Log) -> None:
    summary = dict(summary)
    summary["log"] = log.rows[:: max(1, len(log.rows) // 200)]
    with open(os.path.join(out_dir, "training.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")

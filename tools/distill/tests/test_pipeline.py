"""The distillation pipeline end to end on a tiny random BERT: a few steps of each command,
the losses go down, and the written checkpoints have the layout secformer loads.

    cd tools/distill && python -m unittest discover -s tests -v

With DISTILL_CI_OUT=DIR the checkpoints and a test TSV are kept in DIR (CI then loads them
with `secformer plain` and `secformer eval`); otherwise a temporary directory is used.
"""

import json
import os
import random
import struct
import tempfile
import unittest

import torch

from secformer_distill import __main__ as cli
from secformer_distill import checkpoint

# A toy topic task: the class is the topic of the words in the sentence.
TOPICS = {
    "animal": ["cat", "dog", "horse", "bird", "fish", "lion", "mouse", "cow"],
    "food": ["bread", "apple", "cheese", "soup", "rice", "cake", "salt", "milk"],
    "motion": ["run", "walk", "swim", "fly", "jump", "crawl", "drive", "ride"],
}
FILLER = ["a", "the", "of", "and", "small", "big", "old", "new", "red", "green"]


def toy_rows(n, seed):
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.choice(sorted(TOPICS))
        words = rng.sample(TOPICS[label], 2) + rng.sample(FILLER, 3)
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return rows


def write_tsv(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        f.write("sentence\tlabel\n")
        for s, l in rows:
            f.write(f"{s}\t{l}\n")


def safetensors_dtypes(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    return {v["dtype"] for k, v in header.items() if k != "__metadata__"}


class Pipeline(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(2)
        keep = os.environ.get("DISTILL_CI_OUT")
        cls._tmp = None if keep else tempfile.TemporaryDirectory()
        cls.out = keep or cls._tmp.name
        os.makedirs(cls.out, exist_ok=True)
        o = cls.out
        write_tsv(f"{o}/train.tsv", toy_rows(192, 1))
        write_tsv(f"{o}/dev.tsv", toy_rows(48, 2))
        write_tsv(f"{o}/test.tsv", toy_rows(24, 3))
        with open(f"{o}/labels.txt", "w") as f:
            f.write("\n".join(sorted(TOPICS)) + "\n")
        with open(f"{o}/words.txt", "w") as f:
            f.write(" ".join(sum(TOPICS.values(), []) + FILLER) + "\n")
        cli.main(["random-bert", "--out", f"{o}/base", "--text-file", f"{o}/words.txt"])
        fast = ["--batch-size", "16", "--eval-every", "6", "--log-every", "6", "--threads", "2", "--device", "cpu"]
        cli.main(["finetune", "--base", f"{o}/base", "--train", f"{o}/train.tsv", "--dev", f"{o}/dev.tsv",
                  "--labels", f"{o}/labels.txt", "--out", f"{o}/teacher", "--epochs", "3", "--lr", "2e-3",
                  "--dtype", "f32"] + fast)
        cli.main(["distill", "--teacher", f"{o}/teacher", "--train", f"{o}/train.tsv", "--dev", f"{o}/dev.tsv",
                  "--out", f"{o}/student", "--stage1-epochs", "2", "--stage1-lr", "2e-3",
                  "--stage2-epochs", "2", "--stage2-lr", "1e-3"] + fast)
        cli.main(["distill", "--teacher", f"{o}/base", "--train", f"{o}/train.tsv", "--dev", f"{o}/dev.tsv",
                  "--out", f"{o}/embed", "--stage1-epochs", "2", "--stage1-lr", "2e-3"] + fast)

    @classmethod
    def tearDownClass(cls):
        if cls._tmp:
            cls._tmp.cleanup()

    def summary(self, name):
        with open(f"{self.out}/{name}/training.json") as f:
            return json.load(f)

    def test_finetune_learns(self):
        rows = [r["loss"] for r in self.summary("teacher")["log"]]
        self.assertLess(sum(rows[-3:]) / 3, sum(rows[:3]) / 3)

    def test_distillation_losses_go_down(self):
        for name, stages in [("student", ["stage1", "stage2"]), ("embed", ["stage1"])]:
            s = self.summary(name)
            for stage in stages:
                self.assertLess(s[stage]["loss_last"], s[stage]["loss_first"], f"{name} {stage}: {s[stage]}")

    def test_student_layout(self):
        with open(f"{self.out}/student/config.json") as f:
            cfg = json.load(f)
        self.assertEqual(cfg["secformer_softmax"], "2quad")
        self.assertEqual(cfg["secformer_2quad_c"], 5.0)
        self.assertEqual(cfg["architectures"], ["BertForSequenceClassification"])
        self.assertEqual(cfg["id2label"], {"0": "animal", "1": "food", "2": "motion"})
        self.assertEqual(safetensors_dtypes(f"{self.out}/student/model.safetensors"), {"F16"})
        for f in ["vocab.txt", "tokenizer_config.json"]:
            self.assertTrue(os.path.exists(f"{self.out}/student/{f}"), f)
        with open(f"{self.out}/embed/config.json") as f:
            self.assertEqual(json.load(f)["secformer_softmax"], "2quad")

    def test_student_reloads_with_2quad(self):
        model, _, missing = checkpoint.load_model(f"{self.out}/student")
        self.assertEqual(model.shape.softmax, "2quad")
        self.assertEqual(missing, [])

    def test_forward_matches_transformers(self):
        """The exact-softmax forward is Hugging Face's BertModel (same weights, same outputs)."""
        from transformers import AutoTokenizer, BertModel

        ours, _, _ = checkpoint.load_model(f"{self.out}/base")
        ours.eval()
        hf = BertModel.from_pretrained(f"{self.out}/base", attn_implementation="eager").eval()
        tok = AutoTokenizer.from_pretrained(f"{self.out}/base")
        e = tok(["a cat and a dog", "the old red bread of milk and rice"], padding=True, return_tensors="pt")
        with torch.no_grad():
            a = ours(e["input_ids"], e["token_type_ids"], e["attention_mask"]).hidden_states[-1]
            b = hf(**e).last_hidden_state
        m = e["attention_mask"].bool()
        self.assertLess((a - b)[m].abs().max().item(), 1e-4)

    def test_2quad_is_the_secure_formula(self):
        from secformer_distill.bert import attention_probs

        s = torch.tensor([[0.5, -1.0, 2.0, 9.0]])
        mask = torch.tensor([[True, True, True, False]])
        p = attention_probs(s, mask, "2quad", 5.0)
        q = torch.tensor([5.5**2, 4.0**2, 7.0**2, 0.0])
        self.assertTrue(torch.allclose(p[0], q / q.sum()))


if __name__ == "__main__":
    unittest.main()

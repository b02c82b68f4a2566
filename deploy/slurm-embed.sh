#!/usr/bin/env bash
# Sharded `move embed` on a Slurm cluster: an array of SHARDS tasks styles the shares (each
# task's index comes from $SLURM_ARRAY_TASK_ID), then one dependent job merges them. The
# folders live on storage every node mounts. Submit with: bash deploy/slurm-embed.sh
set -euo pipefail
SHARDS=${SHARDS:-4}
DATA=${DATA:-/shared/data/clean}
STYLE=${STYLE:-/shared/data/style.jpg}
OUT=${OUT:-/shared/runs/marked}
FLAGS="--data $DATA --style $STYLE --out $OUT --rate ${RATE:-0.1} --seed ${SEED:-0} --shards $SHARDS"
export MOVE_CREATED=${MOVE_CREATED:-$(date -u +%Y-%m-%dT%H:%M:%SZ)} # one creation time for every task

array=$(sbatch --parsable --job-name=move-embed --array=0-$((SHARDS - 1)) --cpus-per-task=4 --mem=4G \
	--export=ALL --wrap="move embed $FLAGS")
sbatch --job-name=move-merge --dependency=afterok:$array --cpus-per-task=2 --mem=4G \
	--export=ALL --wrap="move embed $FLAGS --merge"
echo "submitted array $array ($SHARDS shards) and its merge"

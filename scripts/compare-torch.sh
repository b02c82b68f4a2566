#!/usr/bin/env bash
# Compares move bench with ../shared/peer/torch_bench.py (Debian's PyTorch, 2 threads) on this
# machine: ROUNDS rounds (default 4), alternating the two for each model so that both see the
# same machine, then prints the medians and the ratio per round (move/torch for images per
# second, torch/move for milliseconds per image: above 1 means move is faster). grad1 is move's
# per-example gradients from batched passes against torch's batch-1 loop; "grad1 loop" is move's
# own batch-1 loop against the same.
# Usage: [MODELS="resnet20 wrn16-1"] [SIZE=32] scripts/compare-torch.sh [ROUNDS] [SECONDS]
# (SECONDS per figure: 6 at 32 px, 15 above)
# SIZE=224 MODELS=resnet18 compares on 224-pixel images (torch side: scripts/peer_bench.py,
# torchvision's ResNet-18; batches of 16 and 32).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-4}
models=${MODELS:-resnet20 wrn16-1}
size=${SIZE:-32}
# At 224 px both engines take several steps to settle (move's first ten training steps run up
# to 1.7x slower than the rest): 15 seconds per figure keep the median in the steady state.
secs=${2:-$([[ $size == 32 ]] && echo 6 || echo 15)}
py=/usr/bin/python3
peer=(../shared/peer/torch_bench.py)
if [[ $size != 32 ]]; then
  peer=(scripts/peer_bench.py --size "$size")
fi
go build -o /tmp/move-compare ./cmd/move
log=$(mktemp)
for ((r = 1; r <= rounds; r++)); do
  for m in $models; do
    echo "round $r/$rounds: $m at $size px" >&2
    echo "move $m $(/tmp/move-compare bench --models "$m" --size "$size" --seconds "$secs" --json 2>/dev/null | tr -d '\n')" >> "$log"
    echo "torch $m $($py "${peer[@]}" --threads 2 --model "$m" --seconds "$secs" 2>/dev/null | tr '\n' ' ')" >> "$log"
  done
done
MODELS="$models" $py - "$log" <<'PY'
import os, sys, json, re, statistics as st
rows = {}
for line in open(sys.argv[1]):
    who, model, rest = line.split(' ', 2)
    if who == 'move':
        d = [x for x in json.loads(rest)['models'] if x['model'] == model][0]
        v = (d['train_img_per_s'], d['infer_img_per_s'], d['grad1_ms_per_img'], d['grad1_loop_ms_per_img'])
    else:
        v = tuple(float(re.search(k + r' ([\d.]+)', rest).group(1)) for k in ('train', 'infer', 'grad1'))
        v = v + (v[2],)  # torch's grad1 is a loop of batch-1 passes
    rows.setdefault((model, who), []).append(v)
print('%-9s %-10s %19s %19s %7s  %s' % ('model', 'figure', 'move (median)', 'torch (median)', 'ratio', 'ratio per round'))
for model in os.environ['MODELS'].split():
    a, b = rows[(model, 'move')], rows[(model, 'torch')]
    for k, name in enumerate(('train', 'infer', 'grad1', 'grad1 loop')):
        ra, rb = [x[k] for x in a], [x[k] for x in b]
        ms = name.startswith('grad1')
        unit = 'ms/img' if ms else 'img/s'
        per = [(x / y if not ms else y / x) for x, y in zip(ra, rb)]
        ratio = st.median(ra) / st.median(rb) if not ms else st.median(rb) / st.median(ra)
        print('%-9s %-10s %12.1f %-6s %12.1f %-6s %6.2fx  %s' % (model, name, st.median(ra), unit, st.median(rb), unit, ratio, ' '.join('%.2f' % p for p in per)))
print('grad1: move\'s per-example gradients from batched passes (what its white-box features use) against')
print('torch_bench.py\'s loop of batch-1 passes; grad1 loop: both sides one batch-1 pass per image')
PY
rm -f "$log"

#!/usr/bin/env bash
# The bring-your-own-model workflow: move styles the data, the owner trains in PyTorch and
# exports ONNX, move trains the meta-classifiers on the exports and verifies suspects (ONNX
# files and a served model). Usage:
#   examples/pytorch/run.sh DATA STYLE WORK [EPOCHS]
# DATA is an image folder with train/ and test/; needs `move` on the PATH and Debian's
# python3-torch and python3-torchvision (run with /usr/bin/python3).
set -euo pipefail
data=$1 style=$2 work=$3 epochs=${4:-10}
py=${PYTHON:-/usr/bin/python3}
here="$(cd "$(dirname "$0")" && pwd)"
onnx=(--onnx-mean 0.5,0.5,0.5 --onnx-std 0.25,0.25,0.25)
mkdir -p "$work"

# 1. Embed the external features (the owner's style on 20% of the training images).
move embed --data "$data" --style "$style" --out "$work/marked" --rate 0.2 ${EMBED_FLAGS:-}

# 2. The owner trains in PyTorch: the victim on the watermarked folder, benign models on the
#    clean one (one trains the meta-classifier, one is the test's reference).
$py "$here/train.py" fit --data "$work/marked" --out "$work/victim.onnx" --epochs "$epochs" --seed 1
$py "$here/train.py" fit --data "$data" --out "$work/benign.onnx" --epochs "$epochs" --seed 2
$py "$here/train.py" fit --data "$data" --out "$work/reference.onnx" --epochs "$epochs" --seed 3

# 3. Suspects: a copy of the victim, a student distilled from it in PyTorch, an independent model.
cp "$work/victim.onnx" "$work/copy.onnx"
$py "$here/train.py" distill --teacher "$work/victim.pt" --data "$data" --out "$work/student.onnx" --epochs "$epochs" --seed 4
$py "$here/train.py" fit --data "$data" --out "$work/independent.onnx" --epochs "$epochs" --seed 5

# 4. The meta-classifiers, on the ONNX exports.
for mode in white black; do
	move meta --mode $mode --victim "$work/victim.onnx" --benign "$work/benign.onnx" --key "$work/marked/key.json" \
		--out "$work/meta-$mode.safetensors" "${onnx[@]}"
done

# 5. Verify the three suspects in both modes (exit status 0 when any is flagged) ...
for mode in white black; do
	move verify --meta "$work/meta-$mode.safetensors" --key "$work/marked/key.json" --benign "$work/reference.onnx" \
		--suspect "$work/copy.onnx" --suspect "$work/student.onnx" --suspect "$work/independent.onnx" "${onnx[@]}" || true
done

# 6. ... and the student served over HTTP (black-box: only its answers).
move serve --model "$work/student.onnx" --addr 127.0.0.1:0 --addr-file "$work/addr.txt" --name student "${onnx[@]}" 2>"$work/serve.log" &
server=$!
trap 'kill $server 2>/dev/null' EXIT
for _ in $(seq 100); do test -s "$work/addr.txt" && break; sleep 0.1; done
move verify --meta "$work/meta-black.safetensors" --key "$work/marked/key.json" --benign "$work/reference.onnx" \
	--endpoint "http://$(cat "$work/addr.txt")/v2/models/student" "${onnx[@]}" || true

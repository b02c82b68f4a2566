#!/usr/bin/env bash
# Runs the reproductions of issue 16 (hostile and careless input) against a fresh build and
# prints, for each, the command, the last lines it printed and its exit status. Memory-hungry
# inputs run under `ulimit -v 4000000`. Needs Go, python3 and curl; takes about two minutes.
set -uo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
go build -o "$work/move" "$here/cmd/move" || exit 2
cd "$work"
move="$work/move"
try() { # try TITLE CMD...: run, show the tail of its output and its status
	echo "== $1"; shift
	echo "\$ $*" | sed "s|$work/||g"
	( "$@" ) >out.txt 2>&1; local rc=$?
	grep -av '^\s*\(epoch\|reading\|training\|styling\|control styles\|\[\)' out.txt | tail -n 4 | sed "s|$work/||g; s/^/  /"
	echo "  -> exit status $rc"
}
quiet() { "$@" >/dev/null 2>&1 || { echo "setup failed: $*"; exit 2; }; }

# Fixtures: a small model, a clean set, a key, a meta-classifier and a reference.
python3 - <<'PY'
import os, struct, zlib
def png(path, w, h):  # a 1x1 PNG whose header declares w x h pixels
    def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    raw = chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(b"\0\0\0\0")) + chunk(b"IEND", b"")
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + raw)
png("bomb.png", 60000, 60000)
print("bomb.png: %d bytes declaring 60000x60000" % os.path.getsize("bomb.png"))
PY
quiet $move train --data synthetic:300 --arch resnet20 --epochs 1 --batch 50 --size 16 --out m.safetensors
python3 - <<'PY'
import struct, zlib, os, random
random.seed(1)
def png(path, rgb):  # a real 16x16 RGB PNG
    def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    rows = b"".join(b"\0" + bytes(rgb) * 16 for _ in range(16))
    data = chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + data)
for root, sizes in (("clean", (("train", 40), ("test", 10))), ("e11data", (("train", 100),))):
    for split, n in sizes:
        for c, cls in enumerate(("cat", "dog")):
            os.makedirs("%s/%s/%s" % (root, split, cls), exist_ok=True)
            for i in range(n):
                png("%s/%s/%s/%03d.png" % (root, split, cls, i), (random.randrange(256) // (c + 1), 40 * c, random.randrange(256)))
png("style.png", (200, 30, 90))
PY
quiet $move embed --data clean --style style.png --out marked --rate 0.25 --steps 5 --style-size 16 --controls 0
quiet $move train --data marked --epochs 1 --batch 20 --seed 1 --out v.safetensors
quiet $move train --data clean --epochs 1 --batch 20 --seed 2 --out b1.safetensors
quiet $move train --data clean --epochs 1 --batch 20 --seed 3 --out R.safetensors
quiet $move meta --mode black --victim v.safetensors --benign b1.safetensors --key marked/key.json --out META.safetensors

echo; echo "### 1. a negative margin, alpha, m, resamples"
for f in "--min-delta -0.01" "--alpha 2" "--alpha 0" "--alpha -1" "--m -5" "--resamples -1"; do
	try "verify $f" $move verify --meta META.safetensors --key marked/key.json --benign R.safetensors --suspect R.safetensors $f
done
try "the reference against itself (the valid test)" $move verify --meta META.safetensors --key marked/key.json --benign R.safetensors --suspect R.safetensors

echo; echo "### 2. small hostile files under ulimit -v 4000000"
mkdir -p bombdata/train/cat bombdata/train/dog; cp bomb.png bombdata/train/cat/; cp clean/train/dog/000.png bombdata/train/dog/
python3 - <<'PY'
import json, struct
b = open("m.safetensors", "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
meta = json.loads(h["__metadata__"]["move"]); meta["input_size"] = 100000; h["__metadata__"]["move"] = json.dumps(meta)
hb = json.dumps(h).encode(); open("big.safetensors", "wb").write(struct.pack("<Q", len(hb)) + hb + b[8 + n:])
k = json.load(open("marked/key.json")); k["samples"][0]["styled"] = "../../../../../../../dev/zero"; json.dump(k, open("marked/zero-key.json", "w"))
PY
mkdir -p linkdata/train/cat linkdata/train/dog; ln -s /dev/zero linkdata/train/cat/a.png; cp clean/train/dog/000.png linkdata/train/dog/
python3 - >/dev/null 2>&1 <<'PY' &
import http.server, json
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        b = json.dumps({"name": "m", "platform": "x", "inputs": [{"name": "images", "datatype": "FP32", "shape": [-1, 4096, 4096, 3]}], "outputs": []}).encode()
        self.send_response(200); self.send_header("Content-Type", "application/json"); self.end_headers(); self.wfile.write(b)
http.server.HTTPServer(("127.0.0.1", 18977), H).serve_forever()
PY
sleep 1
try "a 60000x60000 PNG as --style" bash -c "ulimit -v 4000000; $move embed --data clean --style bomb.png --out o1"
try "the PNG in a data folder" bash -c "ulimit -v 4000000; $move train --data bombdata --epochs 1 --out o2.safetensors"
try "model metadata input_size 100000" bash -c "ulimit -v 4000000; $move eval --model big.safetensors --data clean"
try "an OIP server declaring [-1,4096,4096,3]" bash -c "ulimit -v 4000000; $move verify --meta META.safetensors --key marked/key.json --benign R.safetensors --endpoint http://127.0.0.1:18977/v2/models/m"
try "a key whose styled path reaches /dev/zero through ../" bash -c "ulimit -v 4000000; $move meta --mode black --victim v.safetensors --benign b1.safetensors --key marked/zero-key.json --out x.safetensors"
try "a data folder holding a link to /dev/zero" bash -c "ulimit -v 4000000; $move train --data linkdata --epochs 1 --out o3.safetensors"

echo; echo "### 3. move serve under 50 parallel requests of 50 MB (HOSTILE_LOAD=1; about 3 minutes)"
if [ "${HOSTILE_LOAD:-0}" = 1 ]; then
	(cd "$here" && go build -o "$work/serveload" ./scripts/serveload) || exit 2
	quiet $move train --data synthetic:200 --arch resnet20 --epochs 1 --batch 50 --out m32.safetensors
	$move serve --model m32.safetensors --addr 127.0.0.1:0 --addr-file addr3.txt --name m 2>serve3.log &
	spid=$!
	for _ in $(seq 50); do test -s addr3.txt && break; sleep 0.1; done
	./serveload "http://$(cat addr3.txt)/v2/models/m/infer" $spid 50 1350 | awk 'NR == 1 || /answered|later/'
	kill -INT $spid; wait $spid
else
	echo "  (skipped; set HOSTILE_LOAD=1)"
fi

echo; echo "### 7. the endpoint client: a flaky server, a fatal error, a server that sleeps"
python3 - >/dev/null 2>&1 <<'PY' &
import http.server, json, threading, time
count = {"images": 0, "posts": 0}
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def reply(self, code, obj):
        b = json.dumps(obj).encode(); self.send_response(code); self.send_header("Content-Type", "application/json"); self.end_headers(); self.wfile.write(b)
    def do_GET(self):
        if self.path == "/count": return self.reply(200, count)
        if self.path == "/reset": count.update(images=0, posts=0); return self.reply(200, count)
        self.reply(200, {"name": "m", "platform": "x", "inputs": [{"name": "images", "datatype": "FP32", "shape": [-1, 16, 16, 3]}], "outputs": []})
    def do_POST(self):
        req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        n = req["inputs"][0]["shape"][0]; count["images"] += n; count["posts"] += 1
        model = self.path.split("/")[3]
        if model == "fatal": return self.reply(400, {"error": "no"})
        if model == "sleepy": time.sleep(60)
        if model == "flaky" and count["posts"] % 2 == 1: return self.reply(503, {"error": "busy"})
        self.reply(200, {"outputs": [{"name": "probabilities", "shape": [n, 2], "datatype": "FP32", "data": [0.5] * (2 * n)}]})
http.server.ThreadingHTTPServer(("127.0.0.1", 18978), H).serve_forever()
PY
sleep 1
try "--queries 600 against a server that fails every other request" $move steal --attack labelquery --victim-endpoint http://127.0.0.1:18978/v2/models/flaky --arch resnet20 --data synthetic:6000 --queries 600 --epochs 1 --out q7.safetensors
echo "  the server received: $(curl -s http://127.0.0.1:18978/count)"
curl -s -o /dev/null http://127.0.0.1:18978/reset
try "a fatal error (400) on the first batch of 600 images" $move steal --attack labelquery --victim-endpoint http://127.0.0.1:18978/v2/models/fatal --arch resnet20 --data synthetic:6000 --epochs 1 --out q7b.safetensors
echo "  the server received: $(curl -s http://127.0.0.1:18978/count)"
start=$(date +%s)
try "a server that sleeps 60 s per request, --deadline 5s" $move steal --attack labelquery --victim-endpoint http://127.0.0.1:18978/v2/models/sleepy --arch resnet20 --data synthetic:6000 --epochs 1 --deadline 5s --out q7c.safetensors
echo "  took $(( $(date +%s) - start )) s"

echo; echo "### 4. embed --force through a link to ."
mkdir -p t4 && cp -r clean t4/tiny && ln -s . t4/up
try "ln -s . up; move embed --data up/tiny --out tiny --force" bash -c "cd t4 && $move embed --data up/tiny --out tiny --style ../style.png --force --steps 5 --style-size 16 && ls tiny"

echo; echo "### 5. a malformed key"
python3 -c "
import json; k = json.load(open('marked/key.json')); k['samples'][0]['label'] = 99; json.dump(k, open('marked/k99.json', 'w'))
k['samples'][0]['label'] = 0; k['samples'][0]['styled'] = '../../etc/passwd'; json.dump(k, open('marked/kpasswd.json', 'w'))"
try "labels 99" $move meta --mode white --victim v.safetensors --benign b1.safetensors --key marked/k99.json --out x.safetensors
try "styled ../../etc/passwd" $move meta --mode white --victim v.safetensors --benign b1.safetensors --key marked/kpasswd.json --out x.safetensors

echo; echo "### 6. a checkpoint made on other data"
timeout -s INT 8 $move train --data synthetic:400 --epochs 50 --size 16 --out ck.safetensors >/dev/null 2>&1
try "resume on synthetic:200" $move train --data synthetic:200 --epochs 50 --size 16 --out ck.safetensors
try "resume with another --arch" $move train --data synthetic:400 --arch wrn16-1 --epochs 50 --size 16 --out ck.safetensors

echo; echo "### 8 and 13. NaN weights, overlapping offsets"
python3 - <<'PY'
import json, struct
b = bytearray(open("m.safetensors", "rb").read()); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
name = sorted(k for k in h if k != "__metadata__")[0]; lo = h[name]["data_offsets"][0]
nan = bytes(b); nan = nan[:8 + n + lo] + struct.pack("<f", float("nan")) + nan[8 + n + lo + 4:]; open("nan.safetensors", "wb").write(nan)
names = sorted(k for k in h if k != "__metadata__"); a, c = names[0], names[1]
h[c]["data_offsets"] = [h[a]["data_offsets"][0], h[a]["data_offsets"][0] + h[c]["data_offsets"][1] - h[c]["data_offsets"][0]]
hb = json.dumps(h).encode(); open("overlap.safetensors", "wb").write(struct.pack("<Q", len(hb)) + hb + bytes(b[8 + n:]))
PY
try "eval a model with a NaN weight" $move eval --model nan.safetensors --data synthetic:200
try "export it" $move export --model nan.safetensors --out nan.onnx
try "serve it" $move serve --model nan.safetensors --addr 127.0.0.1:0
try "eval a file whose tensors overlap" $move eval --model overlap.safetensors --data synthetic:200

echo; echo "### 9. meta takes nonsense"
try "--held-out 2" $move meta --mode black --victim v.safetensors --benign b1.safetensors --key marked/key.json --out x.safetensors --held-out 2
try "--classifier bogus" $move meta --mode black --victim v.safetensors --benign b1.safetensors --key marked/key.json --out x.safetensors --classifier bogus
try "--max-train -5" $move meta --mode black --victim v.safetensors --benign b1.safetensors --key marked/key.json --out x.safetensors --max-train -5
try "victim = benign" $move meta --mode black --victim v.safetensors --benign v.safetensors --key marked/key.json --out x.safetensors

echo; echo "### 10. other flags"
for f in "--epochs -1" "--temperature 0" "--lr -1" "--queries -5"; do
	try "steal $f" $move steal --attack distill --victim m.safetensors --data synthetic:200 --out s.safetensors $f
done
try "train --size -3" $move train --data synthetic:200 --size -3 --out t.safetensors
try "eval --limit 2 on synthetic data" $move eval --model m.safetensors --data synthetic:200 --limit 2
mkdir -p other/test/zebra other/test/yak && cp clean/test/cat/000.png other/test/zebra/ && cp clean/test/dog/000.png other/test/yak/
try "a model of other classes" $move eval --model v.safetensors --data other

echo; echo "### 11. embed leftovers"
$move embed --data e11data --style style.png --out e11 --rate 1 --steps 50 --style-size 16 --controls 0 >e11.log 2>&1 &
epid=$!
for _ in $(seq 600); do # interrupt once the first chunk of 64 styled images is written
	test "$(find .e11.partial/train -name '*.png' 2>/dev/null | wc -l)" -ge 64 && break; sleep 0.1
done
kill -INT $epid; wait $epid; rc=$?
echo "  $(grep -a interrupted e11.log) -> exit status $rc"
echo "  after an interrupted embed: $(ls -a | grep -c 'e11.partial') partial folder(s)"
try "the same command again" $move embed --data e11data --style style.png --out e11 --rate 1 --steps 50 --style-size 16 --controls 0
echo "  mode of e11: $(stat -c %a e11); partial folders left: $(ls -a | grep -c 'e11.partial')"
try "--preview into a missing folder" $move embed --data clean --style style.png --out e11b --preview nowhere/p.png
echo "  e11b written: $(test -e e11b && echo yes || echo no)"

echo; echo "### 12. OIP conformance"
$move serve --model m.safetensors --addr 127.0.0.1:0 --addr-file addr.txt --name m 2>serve.log &
spid=$!
for _ in $(seq 50); do test -s addr.txt && break; sleep 0.1; done
addr=$(cat addr.txt)
img=$(python3 -c "print('[' + ','.join(['0.5'] * 768) + ']')")
for c in "GET /v2" "GET /v2/models/m/versions/1" "POST /v2/models/m" "GET /v2/models/m/infer"; do
	set -- $c; echo "== $1 $2"; echo "  $(curl -s -X $1 -o - -w ' [%{http_code} %{content_type}]' http://$addr$2)"
done
for name in "nested data" "wrong input name" "unknown output" "trailing garbage"; do
	case "$name" in
	"nested data") body="{\"inputs\":[{\"name\":\"images\",\"shape\":[1,16,16,3],\"datatype\":\"FP32\",\"data\":[$img]}]}" ;;
	"wrong input name") body="{\"inputs\":[{\"name\":\"pixels\",\"shape\":[1,16,16,3],\"datatype\":\"FP32\",\"data\":$img}]}" ;;
	"unknown output") body="{\"inputs\":[{\"name\":\"images\",\"shape\":[1,16,16,3],\"datatype\":\"FP32\",\"data\":$img}],\"outputs\":[{\"name\":\"logits\"}]}" ;;
	"trailing garbage") body="{\"inputs\":[{\"name\":\"images\",\"shape\":[1,16,16,3],\"datatype\":\"FP32\",\"data\":$img}]} xyz" ;;
	esac
	echo "== POST infer: $name"; echo "  $(curl -s -o - -w ' [%{http_code}]' -d "$body" http://$addr/v2/models/m/infer | cut -c1-160)"
done
kill -TERM $spid; wait $spid; echo "== SIGTERM: exit status $?; $(tail -n 1 serve.log)"
try "--name a/b" $move serve --model m.safetensors --addr 127.0.0.1:0 --name a/b

echo; echo "### 14. a key verified after its folder moved, from another directory"
mkdir -p archive && cp -r marked archive/ && rm -rf marked.moved && mv marked marked.moved
try "verify from elsewhere" bash -c "cd / && $move verify --meta $work/META.safetensors --key $work/archive/marked/key.json --benign $work/R.safetensors --suspect $work/v.safetensors --m 10"
grep -o '"source": "originals[^"]*"' archive/marked/key.json | head -n 1 | sed 's/^/  key: /'
grep -o '"origin": "[^"]*"' archive/marked/key.json | head -n 2 | sed 's/^/  key: /'

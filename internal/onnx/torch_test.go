package onnx

import (
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"google.golang.org/protobuf/proto"

	"move/internal/nn"
	"move/internal/onnx/onnxpb"
	"move/internal/tensor"
)

// The fixtures in testdata come from testdata/make_torch.py (PyTorch 1.13, Debian).

type torchGrad struct {
	Shape  []int     `json:"shape"`
	Stride int       `json:"stride"`
	Values []float64 `json:"values"`
}

type torchExpected struct {
	Input  []float32              `json:"input_nchw"`
	Shape  []int                  `json:"shape"`
	Labels []int                  `json:"labels"`
	Logits []float32              `json:"logits"`
	Grads  []map[string]torchGrad `json:"grads"`
}

func readExpected(t *testing.T, path string) torchExpected {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var e torchExpected
	if err := json.NewDecoder(z).Decode(&e); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return e
}

// splitmixStream writes n float32 values v_k = (z_k >> 40)/2²³ - 1 of the splitmix64
// sequence from seed, as make_torch.py lays out ResNet-18's kernels.
func splitmixStream(path string, seed uint64, n int) error {
	b := make([]byte, 4*n)
	z := seed
	for k := range n {
		z += 0x9E3779B97F4A7C15
		x := z
		x = (x ^ x>>30) * 0xBF58476D1CE4E5B9
		x = (x ^ x>>27) * 0x94D049BB133111EB
		x ^= x >> 31
		binary.LittleEndian.PutUint32(b[4*k:], math.Float32bits(float32(float64(x>>40)/8388608-1)))
	}
	return os.WriteFile(path, b, 0o644)
}

// fixture copies an ONNX fixture into a temporary folder, with the external data it names.
func fixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	var mp onnxpb.ModelProto
	if err := proto.Unmarshal(b, &mp); err != nil {
		t.Fatal(err)
	}
	end := int64(0)
	for _, init := range mp.GetGraph().GetInitializer() {
		var off, length int64
		for _, e := range init.GetExternalData() {
			v, _ := strconv.ParseInt(e.GetValue(), 10, 64)
			switch e.GetKey() {
			case "offset":
				off = v
			case "length":
				length = v
			}
		}
		end = max(end, off+length)
	}
	if end > 0 {
		if err := splitmixStream(filepath.Join(dir, "resnet18.stream"), 0x6d6f7665, int(end/4)); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func nhwc(e torchExpected) *tensor.Tensor {
	return tensor.ToNHWC(tensor.From(e.Input, e.Shape...))
}

// Logits of PyTorch exports match PyTorch's to 1e-4 of the largest logit, and so do the
// signs of the per-example weight gradients wherever PyTorch's gradient is not negligible
// (above 1e-3 of the largest in its tensor).
func TestTorchExports(t *testing.T) {
	for _, c := range []struct {
		file, expected string
		grads          bool
	}{
		{"resnet18.onnx", "resnet18.expected.json.gz", true},
		{"resnet20a.onnx", "resnet20a.expected.json.gz", true},
		{"resnet20a-folded.onnx", "resnet20a.expected.json.gz", false},
	} {
		t.Run(c.file, func(t *testing.T) {
			m, err := ReadFile(fixture(t, c.file), Options{})
			if err != nil {
				t.Fatal(err)
			}
			e := readExpected(t, filepath.Join("testdata", c.expected))
			x := nhwc(e)
			got := logits(t, m, x)
			at, d := closeRel(got, e.Logits, 1e-4)
			if at >= 0 {
				t.Fatalf("logit %d = %g, PyTorch %g (off by %g of the largest)", at, got[at], e.Logits[at], d)
			}
			t.Logf("%d logits within %.2g of the largest of PyTorch's", len(got), d)
			if !c.grads {
				return
			}
			per := x.Len() / x.Shape[0]
			total, agree := 0, 0
			for i, want := range e.Grads {
				xi := tensor.From(x.Data[i*per:(i+1)*per], append([]int{1}, x.Shape[1:]...)...)
				tp := nn.NewTape(true)
				m.Store().ZeroGrad()
				loss := nn.CrossEntropy(tp, m.Forward(tp, nn.Const(xi), false), e.Labels[i:i+1])
				if err := tp.Backward(loss); err != nil {
					t.Fatal(err)
				}
				for name, g := range want {
					p := m.params[name]
					if p == nil {
						t.Fatalf("PyTorch parameter %s is not a parameter of the import", name)
					}
					ours := m.fileLayout(name, p.Grad)
					if ours.Len() != tensor.Numel(g.Shape) {
						t.Fatalf("%s: %d gradient entries, PyTorch %d", name, ours.Len(), tensor.Numel(g.Shape))
					}
					big := 0.0
					for _, v := range g.Values {
						big = math.Max(big, math.Abs(v))
					}
					for k, v := range g.Values {
						if math.Abs(v) <= 1e-3*big {
							continue
						}
						total++
						if (v > 0) == (ours.Data[k*g.Stride] > 0) {
							agree++
						}
					}
				}
				tp.Reset()
			}
			frac := float64(agree) / float64(total)
			t.Logf("%d of %d gradient signs agree (%.5f)", agree, total, frac)
			if frac < 0.999 || total < 1000 {
				t.Fatalf("gradient signs agree on %d of %d entries", agree, total)
			}
		})
	}
}

// The remaining operators (in-graph normalisation, Clip, pools, activation concatenation, a
// view-style flatten, MatMul + Add, dropout, a final Softmax) at opsets 11 and 17: the same
// probabilities and the same gradients as PyTorch.
func TestTorchOperators(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "ops.expected.json.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var e struct {
		torchExpected
		Probs []float32 `json:"probs"`
	}
	if err := json.NewDecoder(z).Decode(&e); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{"ops11.onnx", "ops17.onnx"} {
		t.Run(file, func(t *testing.T) {
			m, err := ReadFile(filepath.Join("testdata", file), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Notes()) != 1 {
				t.Fatalf("notes %q: want one about the final Softmax", m.Notes())
			}
			x := nhwc(e.torchExpected)
			probs := nn.SoftmaxProbs(m.Forward(nil, nn.Const(x), false).Value).Data
			at, d := closeRel(probs, e.Probs, 1e-4)
			if at >= 0 {
				t.Fatalf("probability %d = %g, PyTorch %g (off by %g)", at, probs[at], e.Probs[at], d)
			}
			t.Logf("%d probabilities within %.2g of the largest of PyTorch's; gradients of all %d weights within 1e-3", len(probs), d, len(m.params))
			per := x.Len() / x.Shape[0]
			for i, want := range e.Grads {
				xi := tensor.From(x.Data[i*per:(i+1)*per], append([]int{1}, x.Shape[1:]...)...)
				tp := nn.NewTape(true)
				m.Store().ZeroGrad()
				if err := tp.Backward(nn.CrossEntropy(tp, m.Forward(tp, nn.Const(xi), false), e.Labels[i:i+1])); err != nil {
					t.Fatal(err)
				}
				if len(want) != len(m.params) {
					t.Fatalf("PyTorch has %d parameters, the import %d", len(want), len(m.params))
				}
				for name, g := range want {
					p := m.params[name]
					if p == nil {
						t.Fatalf("no parameter %s", name)
					}
					ours := m.fileLayout(name, p.Grad)
					want := make([]float32, len(g.Values))
					for k, v := range g.Values {
						want[k] = float32(v)
					}
					if at, d := closeRel(ours.Data, want, 1e-3); at >= 0 {
						t.Errorf("example %d, %s[%d]: gradient %g, PyTorch %g (off by %g)", i, name, at, ours.Data[at], want[at], d)
					}
				}
				tp.Reset()
			}
		})
	}
}

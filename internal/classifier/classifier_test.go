package classifier

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"move/internal/data"
	"move/internal/modelfile"
	"move/internal/models"
	"move/internal/nn"
	"move/internal/onnx"
)

// fixed answers the same probabilities for every image and counts what it was asked.
type fixed struct {
	p     []float32
	asked int
}

func (f *fixed) Probs(imgs [][]uint8, h, w int) ([][]float32, error) {
	f.asked += len(imgs)
	out := make([][]float32, len(imgs))
	for i := range out {
		out[i] = f.p
	}
	return out, nil
}

func TestLocalProbsAreSoftmaxOfLogits(t *testing.T) {
	m, err := models.New("resnet20", 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	set := data.Synthetic(5, 3, 8, 2)
	c := Local(m, data.Stats(set), 8)
	if !c.IsLocal() || c.Arch() != "resnet20" {
		t.Fatalf("a local classifier: IsLocal %v, Arch %q", c.IsLocal(), c.Arch())
	}
	imgs := make([][]uint8, set.Len())
	for i := range imgs {
		imgs[i] = set.Image(i)
	}
	got, err := c.Probs(imgs, 8, 8)
	if err != nil {
		t.Fatal(err)
	}
	want := nn.SoftmaxProbs(c.Logits(set))
	for i := range got {
		sum := 0.0
		for k, p := range got[i] {
			sum += float64(p)
			if d := math.Abs(float64(p - want.Data[i*3+k])); d > 1e-6 {
				t.Fatalf("image %d class %d: %g, softmax of the logits %g", i, k, p, want.Data[i*3+k])
			}
		}
		if math.Abs(sum-1) > 1e-5 {
			t.Fatalf("image %d: probabilities sum to %g", i, sum)
		}
	}
	// Images of another size are resized to the classifier's.
	big := data.Resize(imgs[0], 8, 8, 16, 16)
	if p, err := c.Probs([][]uint8{big}, 16, 16); err != nil || len(p) != 1 || len(p[0]) != 3 {
		t.Fatalf("a 16x16 image: %v, %v", p, err)
	}
	if _, err := c.Probs([][]uint8{imgs[0][:10]}, 8, 8); err == nil || !strings.Contains(err.Error(), "10 bytes") {
		t.Fatalf("a short image: %v", err)
	}
}

func TestRemoteAsksItsProber(t *testing.T) {
	f := &fixed{p: []float32{0.25, 0.75}}
	c := Remote(f, 16)
	if c.IsLocal() || c.Arch() != "remote" {
		t.Fatalf("a remote classifier: IsLocal %v, Arch %q", c.IsLocal(), c.Arch())
	}
	got, err := c.Probs([][]uint8{make([]uint8, 3), make([]uint8, 3)}, 1, 1)
	if err != nil || len(got) != 2 || got[1][1] != 0.75 || f.asked != 2 {
		t.Fatalf("got %v, %v; the prober was asked about %d images", got, err, f.asked)
	}
	if _, err := (Model{}).Probs(nil, 1, 1); err == nil {
		t.Fatal("an empty classifier answered")
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	m, _ := models.New("resnet20", 2, 3)
	norm := data.Normalization{Mean: [3]float32{0.1, 0.2, 0.3}, Std: [3]float32{0.5, 0.5, 0.5}}
	p := filepath.Join(dir, "m.safetensors")
	if err := modelfile.Save(p, m, modelfile.Info{Classes: []string{"a", "b"}, InputSize: 12, Norm: norm}, false); err != nil {
		t.Fatal(err)
	}
	c, info, err := Load(p, modelfile.ONNXDefaults{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Norm != norm || c.Size != 12 || info.Classes[1] != "b" || !c.IsLocal() {
		t.Fatalf("loaded %+v, info %+v", c, info)
	}
	// An ONNX file without move metadata needs its normalisation: a typed error, no flag names.
	if err := os.WriteFile(filepath.Join(dir, "x.onnx"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Load(filepath.Join(dir, "missing.safetensors"), modelfile.ONNXDefaults{}); err == nil || !strings.Contains(err.Error(), "missing.safetensors") {
		t.Fatalf("a missing file: %v", err)
	}
	if _, _, err := Load(filepath.Join(dir, "x.onnx"), modelfile.ONNXDefaults{}); err == nil || !strings.Contains(err.Error(), "x.onnx") {
		t.Fatalf("an empty ONNX file: %v", err)
	}
	// An ONNX graph exported without move metadata (as PyTorch's would be) needs its
	// normalisation: a typed error the CLI turns into flag advice, then a load with it.
	b, err := onnx.Export(m, 12, nil, onnx.ExportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bare := filepath.Join(dir, "bare.onnx")
	if err := os.WriteFile(bare, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Load(bare, modelfile.ONNXDefaults{}); !errors.Is(err, modelfile.ErrNoNormalization) || !strings.Contains(err.Error(), "bare.onnx") {
		t.Fatalf("an ONNX file without metadata or normalisation: %v", err)
	}
	c, _, err = Load(bare, modelfile.ONNXDefaults{Norm: &norm})
	if err != nil || c.Norm != norm || c.Size != 12 || c.Arch() != onnx.Arch {
		t.Fatalf("with the normalisation: %+v, %v", c, err)
	}
}

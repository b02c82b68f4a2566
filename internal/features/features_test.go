package features

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"move/internal/models"
	"move/internal/nn"
	"move/internal/onnx"
	"move/internal/tensor"
)

// randomBN gives the batch norms of m random statistics and scales, a quarter of them
// negative, so that folding them changes signs.
func randomBN(m models.Model, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 1))
	st := m.Store()
	for _, name := range st.Names() {
		t := st.Tensor(name)
		switch {
		case strings.HasSuffix(name, "running_var"):
			for i := range t.Data {
				t.Data[i] = 0.5 + r.Float32()
			}
		case strings.HasSuffix(name, "running_mean"), strings.Contains(name, "bn") && strings.HasSuffix(name, ".bias"):
			for i := range t.Data {
				t.Data[i] = 0.2 * float32(r.NormFloat64())
			}
		case strings.Contains(name, "bn") && strings.HasSuffix(name, ".weight"):
			for i := range t.Data {
				t.Data[i] = 0.5 + r.Float32()
				if r.IntN(4) == 0 {
					t.Data[i] = -t.Data[i]
				}
			}
		}
	}
}

// The white-box signs of a model are the signs of the finite-difference gradient of the loss
// with respect to the weights of its folded form (the model exported with its batch norms
// merged into the convolutions, and imported back).
func TestWhiteBoxSignsMatchFiniteDifferencesOfTheFoldedModel(t *testing.T) {
	m, _ := models.New("resnet20", 3, 5)
	randomBN(m, 3)
	r := rand.New(rand.NewPCG(1, 2))
	x := tensor.New(1, 8, 8, 3)
	for i := range x.Data {
		x.Data[i] = float32(r.NormFloat64())
	}
	feats, err := WhiteBox(m, x, []int{1}, Full)
	if err != nil {
		t.Fatal(err)
	}
	b, err := onnx.Export(m, 8, nil, onnx.ExportOptions{FoldBatchNorms: true})
	if err != nil {
		t.Fatal(err)
	}
	folded, err := onnx.Import(b, "", onnx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sm, _ := Describe(m, 8)
	sf, _ := Describe(folded, 8)
	if sm.Folded != 21 || sf.Folded != 0 || sm.Signature != sf.Signature || sm.Dim(Full) != sf.Dim(Full) {
		t.Fatalf("model: %d folded, dim %d, %s; folded export: %d folded, dim %d, %s",
			sm.Folded, sm.Dim(Full), sm.Signature, sf.Folded, sf.Dim(Full), sf.Signature)
	}
	if len(feats[0]) != sf.Dim(Full) || len(feats[0]) != folded.Store().NumParams() {
		t.Fatalf("full vector has %d entries; the folded model %d parameters", len(feats[0]), folded.Store().NumParams())
	}
	loss := func() float64 {
		return float64(nn.CrossEntropy(nil, folded.Forward(nil, nn.Const(x), false), []int{1}).Data()[0])
	}
	folded.Store().ZeroGrad()
	tp := nn.NewTape(true)
	tp.Backward(nn.CrossEntropy(tp, folded.Forward(tp, nn.Const(x), false), []int{1}))
	checked, flipped := 0, 0
	off := 0
	for _, p := range sf.Parts {
		for j := 0; j < p.Param.Value.Len(); j += 1 + p.Param.Value.Len()/13 {
			g := p.Param.Grad.Data[j]
			if math.Abs(float64(g)) < 1e-2 {
				continue
			}
			orig := p.Param.Value.Data[j]
			const h = 1e-3
			p.Param.Value.Data[j] = orig + h
			lp := loss()
			p.Param.Value.Data[j] = orig - h
			lm := loss()
			p.Param.Value.Data[j] = orig
			fd := (lp - lm) / (2 * h)
			if feats[0][off+j] != sign(float32(fd)) {
				t.Errorf("%s[%d]: feature sign %v, finite difference %g", p.Name, j, feats[0][off+j], fd)
			}
			if sp := sm.Parts[len(sm.Parts)*0+indexOf(sf.Parts, p)]; sp.Flip != nil && sp.Flip[j/(p.Param.Value.Len()/p.Param.Shape()[0])] < 0 {
				flipped++
			}
			checked++
		}
		off += p.Param.Value.Len()
	}
	if checked < 100 || flipped < 10 {
		t.Fatalf("only %d weights checked, %d under a negative batch-norm scale", checked, flipped)
	}
	comp, _ := WhiteBox(m, x, []int{1}, Compressed)
	if len(comp[0]) != sm.Dim(Compressed) || len(comp[0]) >= len(feats[0])/4 {
		t.Fatalf("compressed length %d (dim %d, full %d)", len(comp[0]), sm.Dim(Compressed), len(feats[0]))
	}
	// The folded export's own vector agrees with the model's.
	for _, layout := range []string{Full, Compressed} {
		a, _ := WhiteBox(m, x, []int{1}, layout)
		b, _ := WhiteBox(folded, x, []int{1}, layout)
		diff := 0
		for k := range a[0] {
			if a[0][k] != b[0][k] {
				diff++
			}
		}
		if diff > len(a[0])/1000 {
			t.Errorf("%s: %d of %d signs differ between the model and its folded export", layout, diff, len(a[0]))
		}
	}
}

// The raw ablation keeps the gradients' values: its signs are the compressed layout's, and
// each image's vector has unit root mean square; two images give different scales before
// normalisation, so the normalisation is not a no-op.
func TestWhiteBoxRaw(t *testing.T) {
	m, _ := models.New("resnet20", 3, 5)
	randomBN(m, 3)
	r := rand.New(rand.NewPCG(3, 4))
	x := tensor.New(2, 8, 8, 3)
	for i := range x.Data {
		x.Data[i] = float32(r.NormFloat64())
	}
	raw, err := WhiteBox(m, x, []int{1, 2}, Raw)
	if err != nil {
		t.Fatal(err)
	}
	comp, _ := WhiteBox(m, x, []int{1, 2}, Compressed)
	for i := range 2 {
		if len(raw[i]) != len(comp[i]) {
			t.Fatalf("raw has %d entries, compressed %d", len(raw[i]), len(comp[i]))
		}
		var ss float64
		distinct := map[float32]bool{}
		for k, v := range raw[i] {
			ss += float64(v) * float64(v)
			distinct[v] = true
			if v != 0 && sign(v) != comp[i][k] {
				t.Fatalf("image %d entry %d: raw %g, compressed sign %g", i, k, v, comp[i][k])
			}
		}
		if rms := math.Sqrt(ss / float64(len(raw[i]))); math.Abs(rms-1) > 1e-4 {
			t.Errorf("image %d: root mean square %g", i, rms)
		}
		if len(distinct) < len(raw[i])/2 {
			t.Errorf("image %d: only %d distinct values of %d: signs, not gradients", i, len(distinct), len(raw[i]))
		}
	}
	if _, err := WhiteBox(m, x, []int{1, 2}, "sideways"); err == nil {
		t.Error("an unknown layout was accepted")
	}
}

func indexOf(ps []Part, p Part) int {
	for k := range ps {
		if ps[k].Param == p.Param {
			return k
		}
	}
	return -1
}

// fakeProber answers a probability vector made from an image's mean red and green values.
type fakeProber struct{}

func (fakeProber) Probs(imgs [][]uint8, h, w int) ([][]float32, error) {
	var out [][]float32
	for _, p := range imgs {
		var r, g float32
		for i := 0; i < len(p); i += 3 {
			r += float32(p[i])
			g += float32(p[i+1])
		}
		r, g = r/float32(h*w*255), g/float32(h*w*255)
		out = append(out, []float32{r, g, 1 - r - g})
	}
	return out, nil
}

func TestBlackBoxByHand(t *testing.T) {
	// 4x4 images: original all black; transformed has one red pixel in the top-left corner.
	orig := make([]uint8, 4*4*3)
	styled := make([]uint8, 4*4*3)
	styled[0] = 255
	f, err := BlackBox(fakeProber{}, [][]uint8{orig}, [][]uint8{styled}, 4, 4)
	if err != nil {
		t.Fatal(err)
	}
	// identity, flip and the shifts (by 1 pixel) all keep the red pixel inside the image:
	// mean red 1/16 each time; the black original has 0 red, 0 green, 1 for the third class.
	want := []float32{}
	for range 5 {
		want = append(want, 1.0/16, 0, -1.0/16)
	}
	if len(f[0]) != 15 {
		t.Fatalf("%d values, want 3 classes x 5 augmentations", len(f[0]))
	}
	for i := range want {
		if math.Abs(float64(f[0][i]-want[i])) > 1e-6 {
			t.Fatalf("value %d = %g, want %g (all %v)", i, f[0][i], want[i], f[0])
		}
	}
	// The augmentations by hand: the corner pixel moves as expected.
	at := func(p []uint8, x, y int) uint8 { return p[(y*4+x)*3] }
	if at(Augment(styled, 4, 4, 1), 3, 0) != 255 || at(Augment(styled, 4, 4, 2), 1, 1) != 255 ||
		at(Augment(styled, 4, 4, 3), 1, 0) != 255 || at(Augment(styled, 4, 4, 4), 0, 1) != 255 {
		t.Fatal("flip or shift moved the pixel elsewhere")
	}
}

// White-box features of a batch come from one batched pass with per-example gradients: each
// image's vector is the one it gets alone. A model whose graph reaches a weight through an
// operation without per-example support (here a broadcast Add of a bias) falls back to one
// image per pass and gets the same vectors too.
func TestWhiteBoxBatchedEqualsOneImageAtATime(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const n = 6
	x := tensor.New(n, 8, 8, 3)
	for i := range x.Data {
		x.Data[i] = float32(r.NormFloat64())
	}
	labels := []int{0, 1, 2, 1, 0, 2}
	res, _ := models.New("resnet20", 3, 5)
	randomBN(res, 3)
	ba := newBiasAddModel(r)
	tp := nn.NewTape(true)
	tp.PerExample(true)
	if err := nn.Catch(func() { tp.Backward(nn.CrossEntropy(tp, ba.Forward(tp, nn.Const(x), false), labels)) }); err == nil || !strings.Contains(err.Error(), "does not support") {
		t.Fatalf("the bias-add model does not exercise the fallback: %v", err)
	}
	for _, m := range []models.Model{res, ba} {
		for _, layout := range []string{Raw, Full} {
			all, err := WhiteBox(m, x, labels, layout)
			if err != nil {
				t.Fatal(err)
			}
			for i := range n {
				one, err := WhiteBox(m, tensor.From(x.Data[i*8*8*3:(i+1)*8*8*3], 1, 8, 8, 3), labels[i:i+1], layout)
				if err != nil {
					t.Fatal(err)
				}
				diff := 0
				for k := range one[0] {
					if d := math.Abs(float64(all[i][k] - one[0][k])); (layout == Raw && d > 1e-4*(1+math.Abs(float64(one[0][k])))) || (layout == Full && d != 0) {
						diff++
					}
				}
				if diff > len(one[0])/1000 {
					t.Errorf("%s %s, image %d: %d of %d entries differ between the batch and the image alone", m.Arch(), layout, i, diff, len(one[0]))
				}
			}
		}
	}
}

// biasAddModel is conv, global pooling, a dense layer without bias, and a bias added by a
// broadcasting nn.Binary (as an imported MatMul+Add graph has it): an operation without
// per-example gradients reaching a weight.
type biasAddModel struct {
	s    *nn.Store
	conv *nn.Conv
	w, b *nn.Var
}

func newBiasAddModel(r *rand.Rand) *biasAddModel {
	s := nn.NewStore()
	m := &biasAddModel{s: s, conv: nn.NewConv(s, "conv", 3, 4, 3, 1, 1, false, r)}
	w, b := tensor.New(3, 4), tensor.New(1, 3)
	for i := range w.Data {
		w.Data[i] = float32(r.NormFloat64())
	}
	for i := range b.Data {
		b.Data[i] = float32(r.NormFloat64())
	}
	m.w, m.b = s.Param("fc.weight", w), s.Param("fc.bias", b)
	return m
}

func (m *biasAddModel) Forward(tp *nn.Tape, x *nn.Var, _ bool) *nn.Var {
	h := nn.Linear(tp, nn.GlobalAvgPool(tp, nn.ReLU(tp, m.conv.Apply(tp, x))), m.w, nil)
	return nn.Binary(tp, "Add", h, m.b)
}
func (m *biasAddModel) Store() *nn.Store { return m.s }
func (m *biasAddModel) Arch() string     { return "bias-add" }
func (m *biasAddModel) Classes() int     { return 3 }

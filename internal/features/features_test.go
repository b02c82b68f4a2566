package features

import (
	"math"
	"math/rand/v2"
	"testing"

	"move/internal/models"
	"move/internal/nn"
	"move/internal/tensor"
)

// The white-box signs agree with central finite differences of the loss on the weights whose
// gradient is not negligible.
func TestWhiteBoxSignsMatchFiniteDifferences(t *testing.T) {
	m, _ := models.New("resnet20", 3, 5)
	r := rand.New(rand.NewPCG(1, 2))
	x := tensor.New(1, 8, 8, 3)
	for i := range x.Data {
		x.Data[i] = float32(r.NormFloat64())
	}
	feats, err := WhiteBox(m, x, []int{1}, Full)
	if err != nil {
		t.Fatal(err)
	}
	if len(feats[0]) != m.Store().NumParams() {
		t.Fatalf("full vector has %d entries for %d parameters", len(feats[0]), m.Store().NumParams())
	}
	loss := func() float64 {
		return float64(nn.CrossEntropy(nil, m.Forward(nil, nn.Const(x), false), []int{1}).Data()[0])
	}
	// Analytic gradient, to pick weights with a clear sign.
	m.Store().ZeroGrad()
	tp := nn.NewTape(true)
	tp.Backward(nn.CrossEntropy(tp, m.Forward(tp, nn.Const(x), false), []int{1}))
	checked := 0
	off := 0
	for _, p := range m.Store().Params() {
		for j := 0; j < p.Value.Len() && checked < 40; j += 1 + p.Value.Len()/7 {
			g := p.Grad.Data[j]
			if math.Abs(float64(g)) < 2e-2 {
				continue
			}
			orig := p.Value.Data[j]
			const h = 2e-3
			p.Value.Data[j] = orig + h
			lp := loss()
			p.Value.Data[j] = orig - h
			lm := loss()
			p.Value.Data[j] = orig
			fd := (lp - lm) / (2 * h)
			if feats[0][off+j] != sign(float32(fd)) {
				t.Errorf("weight %d: feature sign %v, finite difference %g", off+j, feats[0][off+j], fd)
			}
			checked++
		}
		off += p.Value.Len()
	}
	if checked < 10 {
		t.Fatalf("only %d weights checked", checked)
	}
	comp, _ := WhiteBox(m, x, []int{1}, Compressed)
	if len(comp[0]) != WhiteBoxDim(m, Compressed) || len(comp[0]) >= len(feats[0])/4 {
		t.Fatalf("compressed length %d (dim %d, full %d)", len(comp[0]), WhiteBoxDim(m, Compressed), len(feats[0]))
	}
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

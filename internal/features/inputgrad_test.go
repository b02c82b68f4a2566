package features

import (
	"math"
	"math/rand/v2"
	"testing"

	"move/internal/models"
	"move/internal/nn"
	"move/internal/onnx"
	"move/internal/tensor"
)

// The input gradient of each image's own loss matches central finite differences (in float64
// arithmetic on the loss), for every image of a batch.
func TestInputGradientMatchesFiniteDifferences(t *testing.T) {
	m, _ := models.New("resnet20", 3, 5)
	randomBN(m, 3)
	r := rand.New(rand.NewPCG(1, 2))
	x := tensor.New(2, 8, 8, 3)
	for i := range x.Data {
		x.Data[i] = float32(r.NormFloat64())
	}
	labels := []int{1, 2}
	g, err := InputGradient(m, x, labels)
	if err != nil {
		t.Fatal(err)
	}
	loss := func(i int, xi *tensor.Tensor) float64 {
		return float64(nn.CrossEntropy(nil, m.Forward(nil, nn.Const(xi), false), labels[i:i+1]).Data()[0])
	}
	const eps = 2e-3 // small enough not to cross a ReLU kink, large for float32 logits
	checked := 0
	for i := range 2 {
		xi := tensor.From(append([]float32(nil), x.Data[i*192:(i+1)*192]...), 1, 8, 8, 3)
		for _, k := range []int{0, 17, 50, 101, 150, 191} {
			v := xi.Data[k]
			xi.Data[k] = v + eps
			up := loss(i, xi)
			xi.Data[k] = v - eps
			down := loss(i, xi)
			xi.Data[k] = v
			fd := (up - down) / (2 * eps)
			an := float64(g.Data[i*192+k])
			if math.Abs(fd-an) > 2e-3+0.05*math.Abs(fd) {
				t.Errorf("image %d input %d: gradient %g, finite difference %g", i, k, an, fd)
			}
			checked++
		}
	}
	if checked != 12 {
		t.Fatal("nothing checked")
	}
	// The weights got no gradient and are not frozen afterwards.
	for _, p := range m.Store().Params() {
		for _, v := range p.Grad.Data {
			if v != 0 {
				t.Fatal("a weight received a gradient")
			}
		}
	}
}

// Input-gradient features depend on the function, not on how it is parametrised: the model
// and its export with every batch norm folded into the convolutions (other weights, other
// units) give the same vectors; a model of another seed does not.
func TestInputGradientsAreParametrisationInvariant(t *testing.T) {
	m, _ := models.New("resnet20", 3, 5)
	randomBN(m, 3)
	b, err := onnx.Export(m, 16, nil, onnx.ExportOptions{FoldBatchNorms: true})
	if err != nil {
		t.Fatal(err)
	}
	folded, err := onnx.Import(b, "", onnx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	other, _ := models.New("resnet20", 3, 6)
	randomBN(other, 4)
	r := rand.New(rand.NewPCG(3, 4))
	x := tensor.New(4, 16, 16, 3)
	for i := range x.Data {
		x.Data[i] = float32(r.NormFloat64())
	}
	labels := []int{0, 1, 2, 1}
	for _, family := range []string{InputGrad, InputSign} {
		fm, err := InputGradients(m, x, labels, family)
		if err != nil {
			t.Fatal(err)
		}
		ff, err := InputGradients(folded, x, labels, family)
		if err != nil {
			t.Fatal(err)
		}
		fo, _ := InputGradients(other, x, labels, family)
		dist := func(a, b [][]float32) float64 {
			var s float64
			n := 0
			for i := range a {
				for j := range a[i] {
					s += math.Abs(float64(a[i][j] - b[i][j]))
					n++
				}
			}
			return s / float64(n)
		}
		if len(fm[0]) != 3*Grid*Grid {
			t.Fatalf("%d features, want %d", len(fm[0]), 3*Grid*Grid)
		}
		same, diff := dist(fm, ff), dist(fm, fo)
		t.Logf("%s: mean |difference|: folded export %.4f, another model %.4f", family, same, diff)
		if same > 0.01 || diff < 0.1 {
			t.Fatalf("%s: folded export differs by %.4f (want ~0), another model by %.4f (want clearly more)", family, same, diff)
		}
	}
	if _, err := InputGradients(m, x, labels, Full); err == nil {
		t.Fatal("a weight layout was taken for an input-gradient family")
	}
}

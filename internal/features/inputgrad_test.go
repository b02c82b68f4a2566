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

// permuteChannels reorders the output channels of vgg11-bn's first layer (its kernel, bias and
// batch norm) and the input channels of the second layer's kernel to match: the same function
// with its hidden units in another order.
func permuteChannels(m models.Model, perm []int) {
	st := m.Store()
	for _, name := range st.Names() {
		t := st.Tensor(name)
		switch name {
		case "features.0.conv.weight": // [cout][k][k][cin]: permute whole rows
			per := len(t.Data) / t.Shape[0]
			old := append([]float32(nil), t.Data...)
			for i, j := range perm {
				copy(t.Data[i*per:(i+1)*per], old[j*per:(j+1)*per])
			}
		case "features.0.conv.bias", "features.0.bn.weight", "features.0.bn.bias", "features.0.bn.running_mean", "features.0.bn.running_var":
			old := append([]float32(nil), t.Data...)
			for i, j := range perm {
				t.Data[i] = old[j]
			}
		case "features.1.conv.weight": // [cout][k][k][cin]: permute the last axis
			cin := t.Shape[3]
			old := append([]float32(nil), t.Data...)
			for o := 0; o < len(t.Data); o += cin {
				for i, j := range perm {
					t.Data[o+i] = old[o+j]
				}
			}
		}
	}
}

// A model with its hidden units permuted computes the same function: its input-gradient
// features are the same to float tolerance, while the paper's weight-gradient features, which
// live in weight coordinates, are not.
func TestInputGradientsArePermutationInvariant(t *testing.T) {
	m, _ := models.New("vgg11-bn", 3, 7)
	randomBN(m, 5)
	p, _ := models.New("vgg11-bn", 3, 7)
	randomBN(p, 5)
	perm := rand.New(rand.NewPCG(9, 9)).Perm(64)
	permuteChannels(p, perm)
	x := randomImages(3, 32, 32, 5)
	labels := []int{2, 0, 1}
	for _, family := range []string{InputGrad, InputSign} {
		a, err := InputGradients(m, x, labels, family)
		if err != nil {
			t.Fatal(err)
		}
		b, err := InputGradients(p, x, labels, family)
		if err != nil {
			t.Fatal(err)
		}
		var worst float64
		for i := range a {
			for j := range a[i] {
				worst = math.Max(worst, math.Abs(float64(a[i][j]-b[i][j])))
			}
		}
		if worst > 1e-3 {
			t.Errorf("%s: the permuted model's features differ by up to %g", family, worst)
		}
	}
	// The weight-gradient signs of the two models differ: the same function, other coordinates.
	wa, err := weightSigns(m, x, labels)
	if err != nil {
		t.Fatal(err)
	}
	wb, err := weightSigns(p, x, labels)
	if err != nil {
		t.Fatal(err)
	}
	differ := 0
	for j := range wa {
		if wa[j] != wb[j] {
			differ++
		}
	}
	// Only the two layers' coordinates move (about 76,000 of the weights): thousands of signs.
	if differ < 5000 {
		t.Errorf("weight-gradient signs: %d of %d differ after a permutation; want thousands", differ, len(wa))
	}
	t.Logf("weight-gradient signs: %d of %d differ after a permutation", differ, len(wa))
}

// weightSigns is the first image's full weight-gradient sign vector.
func weightSigns(m models.Model, x *tensor.Tensor, labels []int) ([]float32, error) {
	one := tensor.New(1, x.Shape[1], x.Shape[2], x.Shape[3])
	copy(one.Data, x.Data)
	f, err := WhiteBox(m, one, labels[:1], Full)
	if err != nil {
		return nil, err
	}
	return f[0], nil
}

// View 0 is the image; the others are shifts of up to 2 pixels (border replicated), odd ones
// mirrored.
func TestView(t *testing.T) {
	const h, w = 5, 6
	p := make([]uint8, h*w*3)
	for i := range p {
		p[i] = uint8(i)
	}
	at := func(img []uint8, y, x int) uint8 { return img[(y*w+x)*3] }
	if v := View(p, h, w, 0); &v[0] != &p[0] {
		t.Error("view 0 is not the image itself")
	}
	for v := 1; v < MaxViews; v++ {
		a := viewShifts[v]
		got := View(p, h, w, v)
		for y := range h {
			for x := range w {
				sx, sy := x-a[0], y-a[1]
				if a[2] == 1 {
					sx = w - 1 - sx
				}
				sx, sy = min(max(sx, 0), w-1), min(max(sy, 0), h-1)
				if at(got, y, x) != at(p, sy, sx) {
					t.Fatalf("view %d at (%d, %d): %d, want the original's (%d, %d) = %d", v, y, x, at(got, y, x), sy, sx, at(p, sy, sx))
				}
			}
		}
	}
	if View(p, h, w, 2)[0] != p[0] || View(p, h, w, 4)[(0*w+1)*3] != p[0] {
		t.Error("a shift does not replicate the border")
	}
}

package conferrable

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"move/internal/classifier"
	"move/internal/data"
	"move/internal/models"
	"move/internal/nn"
	"move/internal/tensor"
)

var norm = data.Normalization{Mean: [3]float32{0.5, 0.4, 0.3}, Std: [3]float32{0.25, 0.2, 0.3}}

func model(t *testing.T, seed uint64) classifier.Model {
	t.Helper()
	m, err := models.New("resnet20", 4, seed)
	if err != nil {
		t.Fatal(err)
	}
	return classifier.Local(m, norm, 0)
}

func images(n, h, w int, seed uint64) [][]uint8 {
	r := rand.New(rand.NewPCG(seed, 3))
	out := make([][]uint8, n)
	for i := range out {
		out[i] = make([]uint8, h*w*3)
		for j := range out[i] {
			out[i][j] = uint8(32 + r.IntN(192))
		}
	}
	return out
}

// smooth is a small network without kinks (convolution, tanh, global pooling, dense), so
// that finite differences see the gradient and not a ReLU crossing.
type smooth struct {
	st   *nn.Store
	conv *nn.Conv
	fc   *nn.Dense
}

func newSmooth(seed uint64) *smooth {
	r := rand.New(rand.NewPCG(seed, 1))
	st := nn.NewStore()
	return &smooth{st: st, conv: nn.NewConv(st, "conv", 3, 6, 3, 1, 1, true, r), fc: nn.NewDense(st, "fc", 6, 4, r)}
}

func (m *smooth) Forward(tp *nn.Tape, x *nn.Var, _ bool) *nn.Var {
	h := nn.Tanh(tp, m.conv.Apply(tp, x))
	return m.fc.Apply(tp, nn.GlobalAvgPool(tp, h))
}
func (m *smooth) Store() *nn.Store { return m.st }
func (m *smooth) Arch() string     { return "smooth" }
func (m *smooth) Classes() int     { return 4 }

// Both objectives' pixel gradients match central finite differences of the loss computed in
// float64 from the model's logits, for every image of a batch.
func TestObjectiveMatchesFiniteDifferences(t *testing.T) {
	m := classifier.Local(newSmooth(5), norm, 0)
	const n, h, w = 2, 8, 8
	d := h * w * 3
	px, err := pixels(images(n, h, w, 1), d)
	if err != nil {
		t.Fatal(err)
	}
	targets := []int{1, 3}
	loss := func(b int, img []float32, repel bool) float64 {
		x := tensor.New(1, h, w, 3)
		for i := range x.Data {
			c := i % 3
			x.Data[i] = (img[i] - norm.Mean[c]) / norm.Std[c]
		}
		l := m.Local.Forward(nil, nn.Const(x), false).Value.Data
		mx := math.Inf(-1)
		for _, v := range l {
			mx = max(mx, float64(v))
		}
		var s float64
		for _, v := range l {
			s += math.Exp(float64(v) - mx)
		}
		p := math.Exp(float64(l[targets[b]])-mx) / s
		if repel {
			return -math.Log(1 - p)
		}
		return -math.Log(p)
	}
	const eps = 2e-3
	checked := 0
	for _, repel := range []bool{false, true} {
		g, probs, err := Objective(m, px, n, h, w, targets, repel)
		if err != nil {
			t.Fatal(err)
		}
		if len(probs) != n || len(probs[0]) != 4 {
			t.Fatalf("probabilities %d x %d", len(probs), len(probs[0]))
		}
		for b := range n {
			img := append([]float32(nil), px[b*d:(b+1)*d]...)
			for _, k := range []int{0, 31, 77, 100, 150, 191} {
				v := img[k]
				img[k] = v + eps
				up := loss(b, img, repel)
				img[k] = v - eps
				down := loss(b, img, repel)
				img[k] = v
				fd := (up - down) / (2 * eps)
				an := float64(g[b*d+k])
				if math.Abs(fd-an) > 1e-4+0.01*math.Abs(fd) {
					t.Errorf("repel %v image %d pixel %d: gradient %g, finite difference %g", repel, b, k, an, fd)
				}
				checked++
			}
		}
	}
	if checked != 24 {
		t.Fatal("nothing checked")
	}
}

// The examples pull the victim to the targets and push the references away: the victim answers
// the targets more on the examples than on the clean images and more than the references do,
// and the test flags the victim against a reference and clears the reference against itself.
func TestGenerateIsSpecificToTheVictim(t *testing.T) {
	victim := model(t, 1)
	refs := []classifier.Model{model(t, 2), model(t, 3)}
	held := model(t, 4)
	const n, h, w = 40, 8, 8
	imgs := images(n, h, w, 9)
	labels := make([]int, n)
	fp, err := Generate(context.Background(), victim, nil, refs, imgs, labels, h, w, Options{Eps: 24.0 / 255, Batch: 16})
	if err != nil {
		t.Fatal(err)
	}
	if len(fp.Examples) != n {
		t.Fatalf("%d examples of %d images", len(fp.Examples), n)
	}
	mean := func(x []float64) float64 {
		var s float64
		for _, v := range x {
			s += v
		}
		return s / float64(len(x))
	}
	clean := &Fingerprint{H: h, W: w}
	for i, e := range fp.Examples {
		clean.Examples = append(clean.Examples, Example{Image: imgs[i], Target: e.Target})
		for j, v := range e.Image { // within the ball
			if math.Abs(float64(v)-float64(imgs[i][j])) > 24+1 {
				t.Fatalf("example %d pixel %d moved from %d to %d", i, j, imgs[i][j], v)
			}
		}
	}
	sv, _ := fp.Scores(victim)
	cv, _ := clean.Scores(victim)
	sr, _ := fp.Scores(refs[0])
	if !(mean(sv) > mean(cv)+0.05 && mean(sv) > mean(sr)+0.05) {
		t.Fatalf("victim's p(target) %.3f on the examples, %.3f on the clean images; a reference's %.3f", mean(sv), mean(cv), mean(sr))
	}
	// Untrained networks answer almost one class everywhere, so an unseen one says nothing of
	// the examples' specificity; the test's mechanics are checked against a reference.
	res, err := fp.Verify(victim, refs[0], 0.05)
	if err != nil {
		t.Fatal(err)
	}
	if res.P >= 0.01 || math.Abs(res.DeltaMu-(mean(sv)-mean(sr))) > 1e-9 {
		t.Errorf("the victim against a reference: p = %g, delta %.4f (means %.4f - %.4f)", res.P, res.DeltaMu, mean(sv), mean(sr))
	}
	if res, _ := fp.Verify(held, held, 0.05); res.P < 0.5 {
		t.Errorf("a model against itself: p = %g", res.P)
	}
	if _, err := Generate(context.Background(), victim, nil, nil, imgs, labels, h, w, Options{}); err == nil {
		t.Error("no references: no error")
	}
}

package detect

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"move/internal/badnets"
	"move/internal/classifier"
	"move/internal/data"
	"move/internal/models"
	"move/internal/nn"
	"move/internal/train"
)

// smooth is a two-layer tanh network: a smooth function of its input, so that finite
// differences check Neural Cleanse's chain rule without crossing ReLU kinks.
type smooth struct {
	store  *nn.Store
	l1, l2 *nn.Dense
}

func newSmooth(in, classes int) *smooth {
	rng := rand.New(rand.NewPCG(3, 4))
	s := &smooth{store: nn.NewStore()}
	s.l1 = nn.NewDense(s.store, "l1", in, 16, rng)
	s.l2 = nn.NewDense(s.store, "l2", 16, classes, rng)
	return s
}

func (s *smooth) Forward(tp *nn.Tape, x *nn.Var, _ bool) *nn.Var {
	return s.l2.Apply(tp, nn.Tanh(tp, s.l1.Apply(tp, nn.Flatten(tp, x))))
}
func (s *smooth) Store() *nn.Store { return s.store }
func (s *smooth) Arch() string     { return "smooth" }
func (s *smooth) Classes() int     { return 4 }

// The gradients of Neural Cleanse's objective with respect to the mask and pattern logits
// match central finite differences of the objective (computed in float64 from a smooth
// float32 network).
func TestCleanseGradient(t *testing.T) {
	m := newSmooth(8*8*3, 4)
	set := data.Synthetic(2, 4, 8, 2)
	norm := data.CIFAR10Norm
	raw := make([]float64, 2*8*8*3)
	for i := range 2 {
		for o, v := range set.Image(i) {
			raw[i*8*8*3+o] = float64(v) / 255
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	a, b := make([]float64, 64), make([]float64, 64*3)
	for i := range a {
		a[i] = rng.NormFloat64()
	}
	for i := range b {
		b[i] = rng.NormFloat64()
	}
	const lambda = 0.01
	_, ga, gb, _, _, err := cleanseObjective(m, norm, raw, 2, 8, 8, a, b, 1, lambda)
	if err != nil {
		t.Fatal(err)
	}
	f := func() float64 {
		o, _, _, _, _, err := cleanseObjective(m, norm, raw, 2, 8, 8, a, b, 1, lambda)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	const eps = 1e-2
	check := func(name string, x, g []float64, i int) {
		old := x[i]
		x[i] = old + eps
		up := f()
		x[i] = old - eps
		down := f()
		x[i] = old
		fd := (up - down) / (2 * eps)
		if math.Abs(fd-g[i]) > 1e-5+0.01*math.Abs(fd) {
			t.Errorf("d/d%s[%d]: analytic %.6g, finite difference %.6g", name, i, g[i], fd)
		}
	}
	for i := range a {
		check("a", a, ga, i)
	}
	for i := 0; i < len(b); i += 7 {
		check("b", b, gb, i)
	}
}

func TestAnomalyIndex(t *testing.T) {
	c, idx := AnomalyIndex([]float64{10, 11, 9, 10.5, 2})
	// median 10, deviations 0, 1, 1, 0.5, 8 -> MAD 1 x 1.4826; (10 - 2) / 1.4826
	if c != 4 || math.Abs(idx-8/1.4826) > 1e-9 {
		t.Fatalf("class %d index %g", c, idx)
	}
	if _, idx := AnomalyIndex([]float64{3, 3, 3}); idx != 0 {
		t.Fatalf("equal norms: index %g", idx)
	}
	if h := Entropy([]float32{0.25, 0.25, 0.25, 0.25}); math.Abs(h-2) > 1e-9 {
		t.Fatalf("entropy of a uniform 4-way answer: %g bits", h)
	}
}

// On a BadNets-watermarked model STRIP rejects triggered inputs and Neural Cleanse finds the
// target class; on a model trained on clean data neither finds anything.
func TestDetectsBadNets(t *testing.T) {
	if testing.Short() {
		t.Skip("trains two small models")
	}
	all := data.Synthetic(700, 4, 16, 7)
	first, rest := data.Split(all.Len(), 400, 1)
	owner, test := all.Subset(first), all.Subset(rest)
	norm := data.Stats(owner)
	tr := badnets.DefaultTrigger(16)
	tr.Size = 4
	marked, _, err := badnets.Mark(owner, tr, 0.2, 2)
	if err != nil {
		t.Fatal(err)
	}
	fit := func(set *data.Set, seed uint64) models.Model {
		m, _ := models.New("resnet20", 4, seed)
		c := train.Default()
		c.Epochs, c.BatchSize, c.LR, c.Seed, c.Norm, c.Augment = 8, 32, 0.05, seed, norm, data.Augment{Flip: true}
		if _, err := train.Fit(context.Background(), m, set, c, train.Options{}); err != nil {
			t.Fatal(err)
		}
		return m
	}
	victim, clean := fit(marked, 1), fit(owner, 2)
	var cleanIn, triggered [][]uint8
	for i := range 100 {
		cleanIn = append(cleanIn, test.Image(i))
		if test.Labels[i] != tr.Target {
			triggered = append(triggered, tr.Stamp(test.Image(i), 16, 16))
		}
	}
	sv, err := STRIP(classifier.Local(victim, norm, 16), owner, cleanIn, triggered, 16, 16, 10, 3)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := STRIP(classifier.Local(clean, norm, 16), owner, cleanIn, triggered, 16, 16, 10, 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("STRIP: watermarked model: entropy clean %.3f triggered %.3f, detected %.2f; clean model: %.3f / %.3f, detected %.2f",
		sv.MeanClean, sv.MeanMarked, sv.Detected, sc.MeanClean, sc.MeanMarked, sc.Detected)
	if sv.Detected < 0.5 || sc.Detected > 0.2 {
		t.Errorf("STRIP detected %.2f of triggered inputs on the watermarked model, %.2f on the clean one", sv.Detected, sc.Detected)
	}
	nv, err := NeuralCleanse(victim, norm, owner, CleanseOptions{Steps: 80, Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := NeuralCleanse(clean, norm, owner, CleanseOptions{Steps: 80, Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Neural Cleanse: watermarked model norms %.1f (class %d, index %.2f); clean model %.1f (class %d, index %.2f)",
		nv.Norms, nv.Class, nv.Anomaly, nc.Norms, nc.Class, nc.Anomaly)
	if nv.Class != tr.Target || nv.Norms[tr.Target] >= nc.Norms[tr.Target] {
		t.Errorf("Neural Cleanse did not single out the target class of the watermarked model: %+v", nv)
	}
}

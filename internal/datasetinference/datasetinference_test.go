package datasetinference

import (
	"context"
	"math/rand/v2"
	"testing"

	"move/internal/classifier"
	"move/internal/data"
	"move/internal/models"
	"move/internal/train"
)

// Walks are reproducible, sorted, and bounded; a model that answers one class everywhere
// never crosses a boundary.
func TestDistances(t *testing.T) {
	m, _ := models.New("resnet20", 4, 1)
	set := data.Synthetic(6, 4, 16, 2)
	var imgs [][]uint8
	for i := range set.Len() {
		imgs = append(imgs, set.Image(i))
	}
	local := classifier.Local(m, data.Stats(set), 16)
	o := Options{Directions: 4, Steps: 10, StepL2: 1, Seed: 3}
	a, err := Distances(local, imgs, 16, 16, o)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Distances(local, imgs, 16, 16, o)
	for i := range a {
		if len(a[i]) != 4 {
			t.Fatalf("%d distances", len(a[i]))
		}
		for k := range a[i] {
			if a[i][k] != b[i][k] || a[i][k] < 1 || a[i][k] > 11 || (k > 0 && a[i][k] < a[i][k-1]) {
				t.Fatalf("image %d: %v then %v", i, a[i], b[i])
			}
		}
	}
	c, _ := Distances(constant{}, imgs, 16, 16, o)
	for _, d := range c {
		if d[0] != 11 {
			t.Fatalf("a constant model's boundary at %v", d)
		}
	}
}

type constant struct{}

func (constant) Probs(imgs [][]uint8, h, w int) ([][]float32, error) {
	out := make([][]float32, len(imgs))
	for i := range out {
		out[i] = []float32{0.7, 0.1, 0.1, 0.1}
	}
	return out, nil
}

// The test flags the victim itself (a direct copy) and clears a model trained on other data.
func TestVerifyCopyAndIndependent(t *testing.T) {
	if testing.Short() {
		t.Skip("trains two small models")
	}
	// The generated classes are learnt without any generalisation gap, which dataset
	// inference reads; so every label here is random: the victim can only memorise its
	// private images, and sits far from its boundaries on exactly those.
	all := data.Synthetic(900, 4, 16, 9)
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range all.Labels {
		all.Labels[i] = rng.IntN(4)
	}
	first, rest := data.Split(all.Len(), 200, 1)
	owner, thief, public := all.Subset(first), all.Subset(rest[:200]), all.Subset(rest[200:])
	norm := data.Stats(owner)
	fit := func(set *data.Set, seed uint64) classifier.Model {
		m, _ := models.New("resnet20", 4, seed)
		c := train.Default()
		c.Epochs, c.BatchSize, c.LR, c.Seed, c.Norm, c.Augment = 30, 32, 0.05, seed, norm, data.Augment{}
		if _, err := train.Fit(context.Background(), m, set, c, train.Options{}); err != nil {
			t.Fatal(err)
		}
		return classifier.Local(m, norm, 16)
	}
	victim, independent := fit(owner, 1), fit(thief, 2)
	privFit, privTest, err := Split(owner, 100, 100, 3)
	if err != nil {
		t.Fatal(err)
	}
	pubFit, pubTest, err := Split(public, 100, 100, 4)
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Directions: 6, Steps: 40, StepL2: 0.25, Seed: 5}
	reg, acc, err := FitRegressor(victim, privFit, pubFit, 16, 16, o)
	if err != nil {
		t.Fatal(err)
	}
	v, err := reg.Verify(victim, privTest, pubTest, 16, 16, 0.01, 0)
	if err != nil {
		t.Fatal(err)
	}
	in, err := reg.Verify(independent, privTest, pubTest, 16, 16, 0.01, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("regressor accuracy %.2f; victim p %.3g delta %.3f; independent p %.3g delta %.3f", acc, v.P, v.DeltaMu, in.P, in.DeltaMu)
	if !v.Stolen || in.Stolen || in.P < 0.05 {
		t.Errorf("victim p %.3g (want < 0.01), independent p %.3g (want > 0.05)", v.P, in.P)
	}
}

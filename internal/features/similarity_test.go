package features

import (
	"math"
	"math/rand/v2"
	"testing"

	"move/internal/models"
	"move/internal/tensor"
)

// Similarity on hand-made unit vectors: the cosine with the victim's gradient.
func TestSimilarity(t *testing.T) {
	s2 := 1 / math.Sqrt2
	g := [][]float64{{1, 0}, {s2, s2}, {0, -1}}
	victim := [][]float64{{1, 0}, {0, 1}, {0, 1}}
	got, err := Similarity(g, victim)
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{1, s2, -1}
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-12 {
			t.Errorf("image %d: similarity %g, want %g", i, got[i], want[i])
		}
	}
	if _, err := Similarity(g, victim[:2]); err == nil {
		t.Error("two victim gradients for three images: no error")
	}
	if _, err := Similarity(g[:1], [][]float64{{1, 0, 0}}); err == nil {
		t.Error("gradients of different sizes: no error")
	}
}

// UnitInputGradients are InputGradient (checked against finite differences in
// TestInputGradientMatchesFiniteDifferences) divided by each image's norm.
func TestUnitInputGradients(t *testing.T) {
	m, _ := models.New("resnet20", 3, 3)
	x := randomImages(2, 8, 8, 4)
	labels := []int{1, 2}
	u, err := UnitInputGradients(m, x, labels)
	if err != nil {
		t.Fatal(err)
	}
	g, err := InputGradient(m, x, labels)
	if err != nil {
		t.Fatal(err)
	}
	d := 8 * 8 * 3
	for i := range 2 {
		var n float64
		for _, v := range g.Data[i*d : (i+1)*d] {
			n += float64(v) * float64(v)
		}
		n = math.Sqrt(n)
		if n == 0 {
			t.Fatalf("image %d: zero gradient", i)
		}
		for j, v := range u[i] {
			if want := float64(g.Data[i*d+j]) / n; math.Abs(v-want) > 1e-9 {
				t.Fatalf("image %d value %d: %g, want %g", i, j, v, want)
			}
		}
	}
	if _, err := UnitInputGradients(m, x, labels[:1]); err == nil {
		t.Error("one label for two images: no error")
	}
}

// A suspect with its hidden units permuted gets the same similarity scores as the model it
// came from (and the victim's permuted copy scores 1), while another model scores less.
func TestSimilarityIsPermutationInvariant(t *testing.T) {
	newModel := func(seed uint64) models.Model {
		m, _ := models.New("vgg11-bn", 3, seed)
		randomBN(m, seed+1)
		return m
	}
	victim, suspect := newModel(7), newModel(9)
	permuted, victimPermuted := newModel(9), newModel(7)
	permuteChannels(permuted, rand.New(rand.NewPCG(9, 9)).Perm(64))
	permuteChannels(victimPermuted, rand.New(rand.NewPCG(3, 3)).Perm(64))
	x := randomImages(3, 32, 32, 5)
	labels := []int{2, 0, 1}
	unit := func(m models.Model) [][]float64 {
		u, err := UnitInputGradients(m, x, labels)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	gv := unit(victim)
	score := func(m models.Model) []float64 {
		s, err := Similarity(unit(m), gv)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b, c := score(suspect), score(permuted), score(victimPermuted)
	for i := range a {
		if math.Abs(a[i]-b[i]) > 1e-4 {
			t.Errorf("image %d: the permuted model scores %g, the model %g", i, b[i], a[i])
		}
		if math.Abs(c[i]-1) > 1e-4 {
			t.Errorf("image %d: the victim's permuted copy scores %g, want 1", i, c[i])
		}
		if a[i] > 0.99 {
			t.Errorf("image %d: another model scores %g, as if it were the victim", i, a[i])
		}
	}
}

// randomImages is n standard-normal images of h x w x 3, from seed.
func randomImages(n, h, w int, seed uint64) *tensor.Tensor {
	r := rand.New(rand.NewPCG(seed, seed+1))
	x := tensor.New(n, h, w, 3)
	for i := range x.Data {
		x.Data[i] = float32(r.NormFloat64())
	}
	return x
}

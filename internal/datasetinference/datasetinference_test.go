package datasetinference

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"move/internal/classifier"
	"move/internal/data"
	"move/internal/models"
	"move/internal/train"
)

// Walks are reproducible, sorted, and bounded; a model that answers one class everywhere
// never crosses a boundary.
func TestDistances(t *testing.T) {
	// A briefly trained model: an untrained one answers one class everywhere.
	m, _ := models.New("resnet20", 4, 1)
	set := data.Synthetic(64, 4, 16, 2)
	c := train.Default()
	c.Epochs, c.BatchSize, c.Seed, c.Norm, c.Augment = 10, 16, 1, data.Stats(set), data.Augment{}
	if _, err := train.Fit(context.Background(), m, set, c, train.Options{}); err != nil {
		t.Fatal(err)
	}
	var imgs [][]uint8
	for i := range 6 {
		imgs = append(imgs, set.Image(i))
	}
	local := classifier.Local(m, data.Stats(set), 16)
	o := Options{Directions: 4, Steps: 10, StepL2: 1, Seed: 3} // two batches of steps (walkBatch)
	a, err := Distances(local, imgs, 16, 16, o)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Distances(local, imgs, 16, 16, o)
	crossed := 0
	for i := range a {
		if len(a[i]) != 4 {
			t.Fatalf("%d distances", len(a[i]))
		}
		for k := range a[i] {
			if a[i][k] != b[i][k] || a[i][k] < 1 || a[i][k] > 11 || (k > 0 && a[i][k] < a[i][k-1]) {
				t.Fatalf("image %d: %v then %v", i, a[i], b[i])
			}
			if a[i][k] < 11 {
				crossed++
			}
		}
	}
	if crossed == 0 {
		t.Fatalf("no walk crossed a boundary: %v (accuracy %.2f)", a, train.Accuracy(m, set, data.Stats(set), 64))
	}
	// The batched, early-stopping walks find what walking every step of one direction at a
	// time finds.
	for i, img := range imgs {
		rng := rand.New(rand.NewPCG(o.Seed, uint64(i)+1))
		base, _ := local.Probs([][]uint8{img}, 16, 16)
		var want []float32
		for range o.Directions {
			dir := make([]float64, len(img))
			var n2 float64
			for j := range dir {
				dir[j] = rng.NormFloat64()
				n2 += dir[j] * dir[j]
			}
			steps := o.Steps + 1
			for k := 1; k <= o.Steps; k++ {
				q := make([]uint8, len(img))
				for j, v := range img {
					x := float64(v) + 255*float64(k)*(o.StepL2/math.Sqrt(n2)*dir[j])
					q[j] = uint8(math.Round(math.Min(255, math.Max(0, x))))
				}
				pr, _ := local.Probs([][]uint8{q}, 16, 16)
				if classifier.Top1(pr[0]) != classifier.Top1(base[0]) {
					steps = k
					break
				}
			}
			want = append(want, float32(float64(steps)*o.StepL2))
		}
		slices.Sort(want)
		if !slices.Equal(want, a[i]) {
			t.Errorf("image %d: distances %v, one step at a time %v", i, a[i], want)
		}
	}
	cd, _ := Distances(constant{}, imgs, 16, 16, o)
	for _, d := range cd {
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
	black := func(c classifier.Model) Features { return BlindWalk(c, o) }
	white := func(c classifier.Model) Features {
		f, err := MinGD(c, GDOptions{Steps: 15, StepL2: 0.1, StepLinf: 2.0 / 255})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	for _, mode := range []struct {
		name string
		f    func(classifier.Model) Features
		m    int
	}{{"black", black, 100}, {"white", white, 30}} {
		reg, acc, err := FitRegressor(mode.f(victim), privFit, pubFit, 16, 16, 5)
		if err != nil {
			t.Fatal(err)
		}
		v, err := reg.Verify(mode.f(victim), privTest[:mode.m], pubTest[:mode.m], 16, 16, 0.01, 0)
		if err != nil {
			t.Fatal(err)
		}
		in, err := reg.Verify(mode.f(independent), privTest[:mode.m], pubTest[:mode.m], 16, 16, 0.01, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s-box: regressor accuracy %.2f; victim p %.3g delta %.3f; independent p %.3g delta %.3f", mode.name, acc, v.P, v.DeltaMu, in.P, in.DeltaMu)
		if !v.Stolen || in.Stolen || in.P < 0.05 {
			t.Errorf("%s-box: victim p %.3g (want < 0.01), independent p %.3g (want > 0.05)", mode.name, v.P, in.P)
		}
	}
}

// MinGD's distances: K-1 sorted L2 distances then K-1 sorted Linf ones, each bounded by
// (Steps+1) steps; reproducible, and the same (to a step) whatever pairs share a batch
// (images in inference mode do not see each other); descent reaches other classes (a step up the loss
// instead of down reaches none); a remote classifier has no gradients.
func TestMinGD(t *testing.T) {
	m, _ := models.New("resnet20", 4, 1)
	set := data.Synthetic(8, 4, 16, 2)
	var imgs [][]uint8
	for i := range set.Len() {
		imgs = append(imgs, set.Image(i))
	}
	local := classifier.Local(m, data.Stats(set), 16)
	o := GDOptions{Steps: 20, StepL2: 1, StepLinf: 8.0 / 255, Batch: 5}
	f, err := MinGD(local, o)
	if err != nil {
		t.Fatal(err)
	}
	a, err := f(imgs, 16, 16)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := f(imgs, 16, 16)
	var reached [2]int // L2, Linf
	for i := range a {
		if len(a[i]) != 6 {
			t.Fatalf("image %d: %d distances, want 2 x 3", i, len(a[i]))
		}
		for k, d := range a[i] {
			limit := float32(21 * 1)
			if k >= 3 {
				limit = 21 * 8
			}
			if d != b[i][k] || d < 0 || d > limit+1e-4 || (k%3 > 0 && d < a[i][k-1]) {
				t.Fatalf("image %d: %v then %v", i, a[i], b[i])
			}
			if d < limit-1e-4 {
				reached[k/3]++
			}
		}
	}
	if reached[0] == 0 || reached[1] == 0 {
		t.Errorf("descent never reached another class: %v", a)
	}
	o.Batch = 1
	one, _ := MinGD(local, o)
	c, err := one(imgs, 16, 16)
	if err != nil {
		t.Fatal(err)
	}
	// Float rounding differs with the batch's size, and descent with large steps clipped at
	// the image's bounds amplifies it: the two may differ by a step, not more.
	for i := range a {
		for k := range a[i] {
			step := 1.0
			if k >= 3 {
				step = 8
			}
			if math.Abs(float64(a[i][k]-c[i][k])) > step+1e-3 {
				t.Fatalf("image %d: %v in batches of 5, %v one by one", i, a[i], c[i])
			}
		}
	}
	t.Logf("image 0: %v", a[0])
	if _, err := MinGD(classifier.Remote(constant{}, 16), o); err == nil {
		t.Error("MinGD of a remote classifier: no error")
	}
}

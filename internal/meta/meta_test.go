package meta

import (
	"math/rand/v2"
	"path/filepath"
	"testing"
)

// Two noisy clusters are separated, held-out points too, and the file round trip keeps the
// probabilities (standardisation included).
func TestFitSaveLoad(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	gen := func(n int) ([][]float32, []int) {
		var xs [][]float32
		var ys []int
		for i := range n {
			y := i % 2
			x := make([]float32, 40)
			for j := range x {
				x[j] = float32(r.NormFloat64()) + 100 // a large offset the standardisation must remove
				if j < 5 && y == 1 {
					x[j] += 1.5
				}
			}
			xs, ys = append(xs, x), append(ys, y)
		}
		return xs, ys
	}
	xs, ys := gen(200)
	tx, ty := gen(100)
	for _, hidden := range [][]int{nil, {}} {
		c, err := Fit(xs, ys, Info{Mode: "black"}, Options{Hidden: hidden, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		if acc := c.Accuracy(tx, ty); acc < 0.85 {
			t.Fatalf("hidden %v: held-out accuracy %.2f (training %.2f, info %v)", hidden, acc, c.Info.TrainAcc, c.Info.Hidden)
		}
		p := filepath.Join(t.TempDir(), "m.safetensors")
		if err := c.Save(p, false); err != nil {
			t.Fatal(err)
		}
		c2, err := Load(p)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := c.Prob(tx)
		b, _ := c2.Prob(tx)
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("probability %d: %g before saving, %g after", i, a[i], b[i])
			}
		}
		if _, err := c2.Prob([][]float32{make([]float32, 3)}); err == nil {
			t.Fatal("wrong feature length accepted")
		}
	}
}

// A record without a classifier round-trips its Info and refuses to score.
func TestRecordSaveLoad(t *testing.T) {
	info := Info{Mode: "white", Layout: "input-grad-sim", Classes: 10, HeldOutIdx: []int{0, 2, 5}, VictimHash: "ab", KeyHash: "cd", Seed: 4}
	c := Record(info)
	if c.Trained() {
		t.Fatal("a record claims a classifier")
	}
	p := filepath.Join(t.TempDir(), "r.safetensors")
	if err := c.Save(p, false); err != nil {
		t.Fatal(err)
	}
	c2, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c2.Trained() || c2.Info.Layout != info.Layout || c2.Info.VictimHash != "ab" || len(c2.Info.HeldOutIdx) != 3 || c2.Info.HeldOutIdx[2] != 5 || c2.Info.Seed != 4 {
		t.Fatalf("loaded %+v from %+v", c2.Info, info)
	}
	if _, err := c2.Prob([][]float32{{}}); err == nil {
		t.Fatal("a record scored a feature vector")
	}
	// A trained classifier's file whose standardisation is missing is still an error.
	bad := Record(Info{Mode: "white", Dim: 3})
	bad.Info.Dim = 3
	if err := bad.Save(p+"2", false); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p + "2"); err == nil {
		t.Fatal("a file of dimension 3 without weights loaded")
	}
}

package steal

import (
	"context"
	"math"
	"testing"

	"move/internal/wash"
)

// Each washing attack runs and changes the model as it claims, and the thief keeps most of
// the victim's answers.
func TestWashing(t *testing.T) {
	if testing.Short() {
		t.Skip("trains small models")
	}
	w := newWorld(t)
	ft := func(seed uint64) Config {
		c := Config{Train: recipe(seed, w.norm, 2)}
		c.Train.LR = 0.01
		return c
	}
	for i, a := range Attacks() {
		if !a.Washing {
			continue
		}
		cfg := ft(uint64(20 + i))
		cfg.Attack = a.Name
		set, err := a.TrainingSet(Sources{Owner: w.owner, Thief: w.thief})
		if err != nil {
			t.Fatal(err)
		}
		if a.Name == "augdistill" {
			cfg.Train = recipe(30, w.norm, 5)
		}
		res, err := Run(context.Background(), w.local(), set, 4, cfg, nil, nil)
		if err != nil {
			t.Fatalf("%s: %v", a.Name, err)
		}
		served, err := Served(a, res.Model, w.norm, 16)
		if err != nil {
			t.Fatal(err)
		}
		if served.IsLocal() != (a.Serve == "") {
			t.Errorf("%s: served locally %v, front %q", a.Name, served.IsLocal(), a.Serve)
		}
		acc, agree, err := Evaluate(served, w.local(), w.test)
		if err != nil {
			t.Fatal(err)
		}
		sparsity := wash.Sparsity(res.Model)
		t.Logf("%-10s accuracy %.3f agreement %.3f sparsity %.3f", a.Name, acc, agree, sparsity)
		want := map[string]float64{"prune30": 0.3, "prune50": 0.5, "prune70": 0.7, "prune30ft": 0.3, "prune50ft": 0.5, "prune70ft": 0.7}
		if f, ok := want[a.Name]; ok && math.Abs(sparsity-f) > 0.001 {
			t.Errorf("%s: %.4f of the weights are zero, want %g (fine-tuning must keep the mask)", a.Name, sparsity, f)
		}
		switch a.Name {
		case "quantize8":
			for _, v := range wash.Prunable(res.Model) {
				seen := map[float32]bool{}
				for _, x := range v.Value.Data {
					seen[x] = true
				}
				if len(seen) > 256 {
					t.Errorf("quantize8: a tensor takes %d values", len(seen))
				}
			}
		case "fineprune":
			fc := res.Model.Store().Tensor("fc.weight")
			zeroCols := 0
			for c := range fc.Dim(1) {
				zero := true
				for k := range fc.Dim(0) {
					zero = zero && fc.Data[k*fc.Dim(1)+c] == 0
				}
				if zero {
					zeroCols++
				}
			}
			if zeroCols != fc.Dim(1)/2 {
				t.Errorf("fineprune: %d of %d head inputs are zero after fine-tuning, want half", zeroCols, fc.Dim(1))
			}
		}
		// Washing keeps most of the victim's answers, except the aggressive pruning without
		// fine-tuning: on this small world 70% pruning leaves a model at chance (its price).
		if floor := 0.6; a.Name != "prune70" && agree < floor {
			t.Errorf("%s: agreement %.3f with the victim, want at least %.2f", a.Name, agree, floor)
		}
	}
}

package main

import (
	"math"
	"path/filepath"
	"testing"

	"move/internal/modelfile"
	"move/internal/models"
)

// --init-seed starts training from the initial weights of another seed than --seed's: after
// one epoch at a vanishing learning rate the first convolution is that seed's fresh one, not
// --seed's.
func TestTrainInitSeed(t *testing.T) {
	out := filepath.Join(t.TempDir(), "s.safetensors")
	code, _, stderr := runMove("train", "--data", "synthetic:40", "--arch", "resnet20", "--epochs", "1", "--batch", "20", "--size", "16",
		"--lr", "1e-9", "--wd", "0", "--seed", "9", "--init-seed", "5", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	m, _, err := modelfile.Load(out, modelfile.ONNXDefaults{})
	if err != nil {
		t.Fatal(err)
	}
	name := m.Store().ParamNames()[0]
	got := m.Store().Tensor(name).Data
	dist := func(seed uint64) float64 {
		f, err := models.New("resnet20", m.Classes(), seed)
		if err != nil {
			t.Fatal(err)
		}
		var worst float64
		for i, v := range f.Store().Tensor(name).Data {
			worst = math.Max(worst, math.Abs(float64(v-got[i])))
		}
		return worst
	}
	if d := dist(5); d > 1e-5 {
		t.Errorf("%s differs from seed 5's initial weights by up to %g", name, d)
	}
	if d := dist(9); d < 1e-3 {
		t.Errorf("%s is seed 9's initial weights (up to %g apart), not seed 5's", name, d)
	}
}

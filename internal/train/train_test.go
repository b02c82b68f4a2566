package train

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"move/internal/data"
	"move/internal/modelfile"
	"move/internal/models"
)

func smallRecipe(epochs int) Config {
	c := Default()
	c.Epochs, c.BatchSize, c.LR, c.Seed = epochs, 32, 0.05, 3
	c.Augment = data.Augment{Flip: true}
	return c
}

func TestFitLearnsSynthetic(t *testing.T) {
	train := data.Synthetic(400, 4, 16, 1)
	test := data.Synthetic(200, 4, 16, 2)
	c := smallRecipe(4)
	c.Norm = data.Stats(train)
	m, _ := models.New("resnet20", 4, 1)
	before := Accuracy(m, test, c.Norm, 64)
	res, err := Fit(context.Background(), m, train, c, Options{Test: test})
	if err != nil {
		t.Fatal(err)
	}
	acc := res.Epochs[len(res.Epochs)-1].TestAcc
	t.Logf("accuracy %.3f before, %.3f after; losses %+v", before, acc, res.Epochs)
	if acc < 0.9 {
		t.Fatalf("test accuracy %.3f after training, want >= 0.9", acc)
	}
	if res.Epochs[0].TrainLoss <= res.Epochs[len(res.Epochs)-1].TrainLoss {
		t.Fatal("training loss did not fall")
	}
}

// An interrupted run resumed from its checkpoint ends with exactly the weights of an
// uninterrupted run.
func TestResumeMatchesUninterrupted(t *testing.T) {
	train := data.Synthetic(96, 3, 12, 4)
	c := smallRecipe(3)
	info := modelfile.Info{Classes: train.Classes, InputSize: 12, Norm: c.Norm}
	full, _ := models.New("resnet20", 3, 9)
	if _, err := Fit(context.Background(), full, train, c, Options{}); err != nil {
		t.Fatal(err)
	}
	ck := filepath.Join(t.TempDir(), "ck.safetensors")
	part, _ := models.New("resnet20", 3, 9)
	ctx, cancel := context.WithCancel(context.Background())
	_, err := Fit(ctx, part, train, c, Options{Checkpoint: ck, Info: info, Progress: func(s Status) {
		if s.EpochDone && s.Epoch == 2 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v", err)
	}
	resumed, _ := models.New("resnet20", 3, 12345) // different init: everything must come from the checkpoint
	res, err := Fit(context.Background(), resumed, train, c, Options{Checkpoint: ck, Info: info})
	if err != nil {
		t.Fatal(err)
	}
	if res.ResumedFrom != 2 || len(res.Epochs) != 3 {
		t.Fatalf("resumed from %d with %d epochs of history", res.ResumedFrom, len(res.Epochs))
	}
	a, b := full.Store().Map(), resumed.Store().Map()
	for n, ta := range a {
		for i := range ta.Data {
			if ta.Data[i] != b[n].Data[i] {
				t.Fatalf("%s[%d]: %g uninterrupted, %g resumed", n, i, ta.Data[i], b[n].Data[i])
			}
		}
	}
	// A checkpoint of another recipe is refused.
	c2 := c
	c2.LR = 0.2
	other, _ := models.New("resnet20", 3, 9)
	if _, err := Fit(context.Background(), other, train, c2, Options{Checkpoint: ck, Info: info}); err == nil {
		t.Fatal("resumed a checkpoint of another recipe")
	}
	// Nor on other data (the model's recorded provenance would be false), nor for another
	// architecture, each saying which differs (issue 16, item 6).
	fewer := train.Subset(train.PerClass(16))
	if _, err := Fit(context.Background(), other, fewer, c, Options{Checkpoint: ck, Info: info}); err == nil ||
		!strings.Contains(err.Error(), "made on other training data (96 images 12x12") || !strings.Contains(err.Error(), "this run's: 48 images 12x12") {
		t.Fatalf("resumed on other data: %v", err)
	}
	changed := *train
	changed.Pixels = append([]uint8(nil), train.Pixels...)
	changed.Pixels[7]++
	if _, err := Fit(context.Background(), other, &changed, c, Options{Checkpoint: ck, Info: info}); err == nil || !strings.Contains(err.Error(), "other training data") {
		t.Fatalf("resumed on data with one pixel changed: %v", err)
	}
	wide, _ := models.New("wrn16-1", 3, 9)
	if _, err := Fit(context.Background(), wide, train, c, Options{Checkpoint: ck, Info: info}); err == nil || !strings.Contains(err.Error(), "it holds a resnet20, this run trains a wrn16-1") {
		t.Fatalf("resumed for another architecture: %v", err)
	}
}

func TestSchedules(t *testing.T) {
	c := Default()
	if got := c.LRAt(0, 100, 0); got != 0.1 {
		t.Fatalf("cosine at 0: %g", got)
	}
	if got := c.LRAt(50, 100, 0); math.Abs(got-0.05) > 1e-12 {
		t.Fatalf("cosine at half: %g", got)
	}
	c.Schedule, c.Milestones = "step", []int{2, 4}
	if got := c.LRAt(0, 10, 4); math.Abs(got-0.001) > 1e-12 {
		t.Fatalf("step after two milestones: %g", got)
	}
	c.Epochs = 0
	if c.Validate() == nil {
		t.Fatal("zero epochs accepted")
	}
}

// AfterStep runs once after every optimiser step, and what it does to the weights stays.
func TestAfterStep(t *testing.T) {
	set := data.Synthetic(100, 4, 8, 1)
	c := smallRecipe(2)
	c.BatchSize, c.Norm = 32, data.Stats(set)
	m, _ := models.New("resnet20", 4, 1)
	w := m.Store().Tensor("fc.weight")
	calls := 0
	_, err := Fit(context.Background(), m, set, c, Options{AfterStep: func() {
		calls++
		w.Data[0] = 0
	}})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 2*4 {
		t.Fatalf("AfterStep ran %d times for 2 epochs of 4 steps", calls)
	}
	if w.Data[0] != 0 {
		t.Fatalf("the weight AfterStep zeroed is %g after training", w.Data[0])
	}
}

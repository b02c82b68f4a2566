// Package train fits models to labelled image sets: the training loop with SGD or Adam,
// cosine and step schedules, per-epoch checkpoints a run resumes from, evaluation, and
// progress reports.
package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"time"

	"move/internal/data"
	"move/internal/modelfile"
	"move/internal/models"
	"move/internal/nn"
	"move/internal/tensor"
)

// Config is a training recipe. The zero value is not usable; start from Default.
type Config struct {
	Epochs      int                `json:"epochs"`
	BatchSize   int                `json:"batch_size"`
	LR          float64            `json:"lr"`
	Optimizer   string             `json:"optimizer"` // "sgd" or "adam"
	Momentum    float64            `json:"momentum"`
	WeightDecay float64            `json:"weight_decay"`
	Schedule    string             `json:"schedule"` // "cosine", "step" or "constant"
	Milestones  []int              `json:"milestones,omitempty"`
	Gamma       float64            `json:"gamma,omitempty"`
	Seed        uint64             `json:"seed"`
	Augment     data.Augment       `json:"augment"`
	Norm        data.Normalization `json:"normalization"`
}

// Default is the recipe of the MOVE paper and ../shared/peer/torch_train.py: SGD, lr 0.1,
// momentum 0.9, weight decay 5e-4, batch 128, cosine decay per step, crop + flip.
func Default() Config {
	return Config{Epochs: 200, BatchSize: 128, LR: 0.1, Optimizer: "sgd", Momentum: 0.9, WeightDecay: 5e-4,
		Schedule: "cosine", Gamma: 0.1, Augment: data.Standard, Norm: data.CIFAR10Norm}
}

// Validate reports the first problem with a config.
func (c Config) Validate() error {
	switch {
	case c.Epochs < 1:
		return fmt.Errorf("epochs must be at least 1, got %d", c.Epochs)
	case c.BatchSize < 1:
		return fmt.Errorf("batch size must be at least 1, got %d", c.BatchSize)
	case !(c.LR > 0):
		return fmt.Errorf("learning rate must be positive, got %g", c.LR)
	case c.Optimizer != "sgd" && c.Optimizer != "adam":
		return fmt.Errorf("optimizer must be sgd or adam, got %q", c.Optimizer)
	case c.Schedule != "cosine" && c.Schedule != "step" && c.Schedule != "constant":
		return fmt.Errorf("schedule must be cosine, step or constant, got %q", c.Schedule)
	}
	return nil
}

// LRAt is the learning rate for step s (0-based) of total steps, in epoch e.
func (c Config) LRAt(s, total, e int) float64 {
	switch c.Schedule {
	case "cosine":
		return c.LR * (1 + math.Cos(math.Pi*float64(s)/float64(total))) / 2
	case "step":
		lr := c.LR
		for _, m := range c.Milestones {
			if e >= m {
				lr *= c.Gamma
			}
		}
		return lr
	}
	return c.LR
}

// Status is a progress report.
type Status struct {
	Epoch, Epochs int
	Step, Steps   int // within the epoch
	Loss          float64
	ImgPerSec     float64
	ETA           time.Duration
	LR            float64
	TestAcc       float64 // set at the end of an epoch when a test set is given, else -1
	EpochDone     bool
}

// Options are the parts of a run that are not the recipe.
type Options struct {
	Test       *data.Set      // evaluated after every epoch when not nil
	Checkpoint string         // file written after every epoch; resumed from when present
	Progress   func(Status)   // called every few steps and after every epoch
	Info       modelfile.Info // metadata stored in checkpoints
	// Loss, when set, replaces the cross-entropy with the set's labels: it gets the model's
	// logits on the augmented batch x of the images at idx (distillation and query attacks
	// train on a teacher's outputs this way).
	Loss func(tp *nn.Tape, logits *nn.Var, x *tensor.Tensor, idx []int) *nn.Var
	// AfterStep, when set, runs after every optimiser step (a pruned model re-applies its
	// mask there, so that fine-tuning cannot regrow the pruned weights).
	AfterStep func()
}

// Result summarises a run.
type Result struct {
	Epochs      []EpochResult `json:"epochs"`
	ResumedFrom int           `json:"resumed_from_epoch"`
	Seconds     float64       `json:"seconds"`
}

// EpochResult is one epoch's figures.
type EpochResult struct {
	Epoch     int     `json:"epoch"`
	TrainLoss float64 `json:"train_loss"`
	TestAcc   float64 `json:"test_acc"` // -1 when no test set was given
	ImgPerSec float64 `json:"img_per_s"`
}

func newOptimizer(c Config) nn.Optimizer {
	if c.Optimizer == "adam" {
		return nn.NewAdam(float32(c.WeightDecay))
	}
	return &nn.SGD{Momentum: float32(c.Momentum), WeightDecay: float32(c.WeightDecay)}
}

// Fit trains m on set with recipe c. With a checkpoint path, the state after every epoch is
// saved there, and an existing checkpoint of the same recipe and architecture is resumed
// (the epochs it holds are not run again; the result is the same as an uninterrupted run).
// Cancelling ctx stops between steps with ctx's error; the last checkpoint stays.
func Fit(ctx context.Context, m models.Model, set *data.Set, c Config, o Options) (Result, error) {
	var res Result
	if err := c.Validate(); err != nil {
		return res, err
	}
	if set.Len() == 0 {
		return res, errors.New("training set is empty")
	}
	start := time.Now()
	opt := newOptimizer(c)
	params := m.Store().Params()
	first := 0
	dataID := ""
	if o.Checkpoint != "" {
		dataID = Fingerprint(set)
		if _, err := os.Stat(o.Checkpoint); err == nil {
			e, prev, err := loadCheckpoint(o.Checkpoint, m, opt, c, dataID)
			if err != nil {
				return res, err
			}
			first, res.Epochs, res.ResumedFrom = e, prev, e
		}
	}
	n := set.Len()
	steps := (n + c.BatchSize - 1) / c.BatchSize
	total := steps * c.Epochs
	tp := nn.NewTape(true)
	for e := first; e < c.Epochs; e++ {
		rng := rand.New(rand.NewPCG(c.Seed, uint64(e)+1))
		perm := rng.Perm(n)
		t0 := time.Now()
		var lossSum float64
		for s := range steps {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			idx := perm[s*c.BatchSize : min(n, (s+1)*c.BatchSize)]
			x, y := data.Batch(set, idx, c.Norm, c.Augment, rng)
			m.Store().ZeroGrad()
			logits := m.Forward(tp, nn.Const(x), true)
			var loss *nn.Var
			if o.Loss != nil {
				loss = o.Loss(tp, logits, x, idx)
			} else {
				loss = nn.CrossEntropy(tp, logits, y)
			}
			lv := float64(loss.Data()[0])
			if math.IsNaN(lv) || math.IsInf(lv, 0) {
				return res, fmt.Errorf("epoch %d step %d: loss is %v (lower the learning rate)", e+1, s+1, lv)
			}
			if err := tp.Backward(loss); err != nil {
				return res, err
			}
			tp.Reset()
			lr := c.LRAt(e*steps+s, total, e)
			opt.Step(params, float32(lr))
			if o.AfterStep != nil {
				o.AfterStep()
			}
			lossSum += lv * float64(len(idx))
			if o.Progress != nil && (s%10 == 9 || s == steps-1) {
				done := float64(min(n, (s+1)*c.BatchSize))
				rate := done / time.Since(t0).Seconds()
				left := float64(n)*float64(c.Epochs-e) - done
				o.Progress(Status{Epoch: e + 1, Epochs: c.Epochs, Step: s + 1, Steps: steps, Loss: lossSum / done,
					ImgPerSec: rate, ETA: time.Duration(left / rate * float64(time.Second)), LR: lr})
			}
		}
		er := EpochResult{Epoch: e + 1, TrainLoss: lossSum / float64(n), ImgPerSec: float64(n) / time.Since(t0).Seconds(), TestAcc: -1}
		if o.Test != nil {
			er.TestAcc = Accuracy(m, o.Test, c.Norm, 256)
		}
		res.Epochs = append(res.Epochs, er)
		if o.Checkpoint != "" {
			if err := saveCheckpoint(o.Checkpoint, m, opt, c, e+1, res.Epochs, o.Info, dataID); err != nil {
				return res, err
			}
		}
		if o.Progress != nil {
			o.Progress(Status{Epoch: e + 1, Epochs: c.Epochs, Step: steps, Steps: steps, Loss: er.TrainLoss,
				ImgPerSec: er.ImgPerSec, TestAcc: er.TestAcc, EpochDone: true})
		}
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// Logits runs m in evaluation mode over the images at idx (all when nil), in batches.
func Logits(m models.Model, set *data.Set, norm data.Normalization, batch int, idx []int) *tensor.Tensor {
	if idx == nil {
		idx = make([]int, set.Len())
		for i := range idx {
			idx[i] = i
		}
	}
	k := m.Classes()
	out := tensor.New(len(idx), k)
	for s := 0; s < len(idx); s += batch {
		part := idx[s:min(len(idx), s+batch)]
		x, _ := data.Batch(set, part, norm, data.Augment{}, nil)
		copy(out.Data[s*k:], models.Eval(m, x).Data)
	}
	return out
}

// Accuracy is the top-1 accuracy of m on set.
func Accuracy(m models.Model, set *data.Set, norm data.Normalization, batch int) float64 {
	if set.Len() == 0 {
		return math.NaN()
	}
	logits := Logits(m, set, norm, batch, nil)
	return ArgmaxAgreement(logits, set.Labels)
}

// Argmax returns the index of the largest value of each row of logits [N][K].
func Argmax(logits *tensor.Tensor) []int {
	k := logits.Dim(1)
	out := make([]int, logits.Dim(0))
	for i := range out {
		row := logits.Data[i*k : (i+1)*k]
		best := 0
		for j, v := range row {
			if v > row[best] {
				best = j
			}
		}
		out[i] = best
	}
	return out
}

// ArgmaxAgreement is the fraction of rows whose argmax equals labels.
func ArgmaxAgreement(logits *tensor.Tensor, labels []int) float64 {
	pred := Argmax(logits)
	hit := 0
	for i, p := range pred {
		if p == labels[i] {
			hit++
		}
	}
	return float64(hit) / float64(len(pred))
}

func configJSON(c Config) string {
	b, _ := json.Marshal(c)
	return string(b)
}

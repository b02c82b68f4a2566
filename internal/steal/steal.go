// Package steal simulates model theft: it produces the suspect models that ownership
// verification must catch — a direct copy, knowledge distillation, data-free ("zero-shot")
// adversarial distillation, fine-tuning, label- and logit-query extraction — and the
// independently trained model that it must not flag. Every attack is a function of a victim,
// the thief's data, a recipe and a seed; its output is an ordinary model, so attacks chain
// (the copy of one attack is the victim of the next).
package steal

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"move/internal/data"
	"move/internal/features"
	"move/internal/models"
	"move/internal/nn"
	"move/internal/tensor"
	"move/internal/train"
)

// Attacks are the attack names, in the order of the paper's tables.
var Attacks = []string{"copy", "distill", "zeroshot", "finetune", "labelquery", "logitquery", "independent", "adaptive"}

// Describe says what each attack assumes of the thief.
var Describe = map[string]string{
	"copy":        "the victim's weights as they are (fully accessible)",
	"distill":     "knowledge distillation on the owner's training data, soft targets at a temperature (dataset accessible)",
	"zeroshot":    "data-free adversarial distillation: a generator seeks images where student and victim disagree (model accessible, no data)",
	"finetune":    "the victim fine-tuned on the thief's own data (model accessible)",
	"labelquery":  "a fresh model trained on the victim's top-1 answers for the thief's images (query only)",
	"logitquery":  "a fresh model trained to match the victim's probabilities on the thief's images (query only)",
	"independent": "a fresh model trained on the thief's own labelled data, never touching the victim (the control)",
	"adaptive":    "the victim (or a stolen model) fine-tuned on a fraction of clean training data to wash the external features out",
}

// Known returns an error naming the attacks when name is not one of them.
func Known(name string) error {
	for _, a := range Attacks {
		if a == name {
			return nil
		}
	}
	return fmt.Errorf("unknown attack %q (known: copy, distill, zeroshot, finetune, labelquery, logitquery, independent, adaptive)", name)
}

// Victim is the model under attack: local (its weights are accessible) or remote (it only
// answers probabilities, through Prober).
type Victim struct {
	Model  models.Model // nil for a remote victim
	Norm   data.Normalization
	Size   int             // input size the victim expects (0: any)
	Prober features.Prober // answers probabilities; derived from Model when nil
}

func (v Victim) prober() features.Prober {
	if v.Prober != nil {
		return v.Prober
	}
	return features.LocalProber{Model: v.Model, Norm: v.Norm, Size: v.Size}
}

// Config is an attack and its recipe.
type Config struct {
	Attack string
	Arch   string       // architecture of the stolen model ("": the victim's)
	Train  train.Config // recipe of the attacks that train (epochs, rate, batch, seed, normalisation)
	// Temperature of the distillation's soft targets (default 4).
	Temperature float64
	// Queries is the most thief images the query attacks may ask the victim about (0: all).
	Queries int
	// ZeroShot configures the data-free attack.
	ZeroShot ZeroShot
}

// Result is a stolen model and how it was made.
type Result struct {
	Model   models.Model
	Attack  string
	Queries int     // images the victim was asked about (query attacks)
	Images  int     // thief images the attack trained on
	Seconds float64 // wall time of the attack
	History []train.EpochResult
}

// Progress is told how an attack advances.
type Progress func(train.Status)

// Run carries out cfg.Attack on v. thief is the thief's labelled data (the owner's training
// data for distill, clean training data for adaptive, the substitute set otherwise; unused by
// copy and zeroshot); classes is the number of outputs of the stolen model; test, when not
// nil, is evaluated after every epoch (or every few hundred zero-shot iterations).
func Run(ctx context.Context, v Victim, thief *data.Set, classes int, cfg Config, test *data.Set, progress Progress) (*Result, error) {
	if err := Known(cfg.Attack); err != nil {
		return nil, err
	}
	start := time.Now()
	local := v.Model != nil
	arch := cfg.Arch
	if arch == "" {
		if !local {
			return nil, errors.New("the victim is remote: give the architecture of the stolen model")
		}
		arch = v.Model.Arch()
	}
	cloner, canClone := v.Model.(models.Cloner)
	keepsArch := cfg.Attack == "copy" || cfg.Attack == "finetune" || cfg.Attack == "adaptive"
	if err := models.Known(arch); err != nil {
		if !(canClone && keepsArch && arch == v.Model.Arch()) {
			if local && arch == v.Model.Arch() {
				return nil, fmt.Errorf("the victim's architecture (%s) cannot be built afresh for the %s attack: choose the stolen model's architecture (--arch)", arch, cfg.Attack)
			}
			return nil, err
		}
	}
	needsWeights := map[string]bool{"copy": true, "distill": true, "zeroshot": true, "finetune": true, "adaptive": true}
	if needsWeights[cfg.Attack] && !local {
		return nil, fmt.Errorf("the %s attack needs the victim's weights (a model file), not only its answers", cfg.Attack)
	}
	if (cfg.Attack == "copy" || cfg.Attack == "finetune" || cfg.Attack == "adaptive") && arch != v.Model.Arch() {
		return nil, fmt.Errorf("the %s attack keeps the victim's architecture (%s), not %s", cfg.Attack, v.Model.Arch(), arch)
	}
	if cfg.Attack != "copy" && cfg.Attack != "zeroshot" && (thief == nil || thief.Len() == 0) {
		return nil, fmt.Errorf("the %s attack needs training images", cfg.Attack)
	}
	res := &Result{Attack: cfg.Attack}
	opts := train.Options{Test: test, Progress: progress}
	fresh := func() (models.Model, error) { return models.New(arch, classes, cfg.Train.Seed) }
	clone := func() (models.Model, error) {
		if canClone {
			return cloner.Clone()
		}
		m, err := models.New(arch, classes, cfg.Train.Seed)
		if err != nil {
			return nil, err
		}
		return m, m.Store().Load(v.Model.Store().Map())
	}
	fit := func(m models.Model, set *data.Set, o train.Options) error {
		r, err := train.Fit(ctx, m, set, cfg.Train, o)
		res.History, res.Images = r.Epochs, set.Len()
		return err
	}
	var err error
	switch cfg.Attack {
	case "copy":
		res.Model, err = clone()
	case "finetune", "adaptive":
		if res.Model, err = clone(); err == nil {
			err = fit(res.Model, thief, opts)
		}
	case "independent":
		if res.Model, err = fresh(); err == nil {
			err = fit(res.Model, thief, opts)
		}
	case "distill":
		if res.Model, err = fresh(); err == nil {
			opts.Loss = distillLoss(v, cfg.Temperature)
			err = fit(res.Model, thief, opts)
		}
	case "labelquery", "logitquery":
		var set *data.Set
		var probs [][]float32
		set, probs, err = query(ctx, v.prober(), thief, cfg.Queries, cfg.Train.Seed, progress)
		res.Queries = set.Len()
		if err != nil {
			break
		}
		if res.Model, err = fresh(); err != nil {
			break
		}
		if len(probs[0]) != classes {
			err = fmt.Errorf("the victim answers %d probabilities, the stolen model has %d classes", len(probs[0]), classes)
			break
		}
		if cfg.Attack == "labelquery" {
			for i, p := range probs {
				set.Labels[i] = argmax(p)
			}
		} else {
			opts.Loss = softTargetLoss(probs)
		}
		err = fit(res.Model, set, opts)
	case "zeroshot":
		if res.Model, err = fresh(); err == nil {
			res.History, err = zeroShot(ctx, v, res.Model, cfg, test, progress)
			z := cfg.ZeroShot.withDefaults()
			res.Images = z.Iters * (z.StudentSteps + 1) * z.Batch // generated
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s attack: %w", cfg.Attack, err)
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

func argmax(p []float32) int {
	best := 0
	for j, v := range p {
		if v > p[best] {
			best = j
		}
	}
	return best
}

// distillLoss is Hinton's distillation loss T²·KL(softmax(t/T) ‖ softmax(s/T)) with the
// victim as teacher, run in inference mode on the same augmented batch as the student.
func distillLoss(v Victim, temperature float64) func(tp *nn.Tape, logits *nn.Var, x *tensor.Tensor, idx []int) *nn.Var {
	if !(temperature > 0) {
		temperature = 4
	}
	t := float32(temperature)
	ttp := nn.NewTape(false)
	return func(tp *nn.Tape, logits *nn.Var, x *tensor.Tensor, idx []int) *nn.Var {
		tl := v.Model.Forward(ttp, nn.Const(x), false).Value
		scaled := tensor.New(tl.Shape...)
		for i, z := range tl.Data {
			scaled.Data[i] = z / t
		}
		ttp.Reset()
		target := nn.SoftmaxProbs(scaled)
		return nn.Scale(tp, nn.KLDiv(tp, nn.Scale(tp, logits, 1/t), target), t*t)
	}
}

// softTargetLoss is KL(victim's probabilities ‖ softmax(logits)) over the batch; the
// answers were collected once per image (without augmentation), as a thief with a query
// budget would.
func softTargetLoss(probs [][]float32) func(tp *nn.Tape, logits *nn.Var, x *tensor.Tensor, idx []int) *nn.Var {
	k := len(probs[0])
	return func(tp *nn.Tape, logits *nn.Var, x *tensor.Tensor, idx []int) *nn.Var {
		target := tensor.New(len(idx), k)
		for b, i := range idx {
			copy(target.Data[b*k:(b+1)*k], probs[i])
		}
		return nn.KLDiv(tp, logits, target)
	}
}

// query asks the victim about (at most budget of) the thief's images and returns those
// images with the answers. A budget smaller than the set takes a seeded random subset.
func query(ctx context.Context, p features.Prober, thief *data.Set, budget int, seed uint64, progress Progress) (*data.Set, [][]float32, error) {
	idx := rand.New(rand.NewPCG(seed, 0x71756572)).Perm(thief.Len())
	if budget > 0 && budget < len(idx) {
		idx = idx[:budget]
	}
	set := thief.Subset(idx)
	const chunk = 256
	probs := make([][]float32, 0, set.Len())
	t0 := time.Now()
	for s := 0; s < set.Len(); s += chunk {
		if err := ctx.Err(); err != nil {
			return set, nil, err
		}
		imgs := make([][]uint8, 0, chunk)
		for i := s; i < min(set.Len(), s+chunk); i++ {
			imgs = append(imgs, set.Image(i))
		}
		out, err := p.Probs(imgs, set.H, set.W)
		if err != nil {
			return set, nil, fmt.Errorf("querying the victim: %w", err)
		}
		if len(out) != len(imgs) {
			return set, nil, fmt.Errorf("querying the victim: %d answers for %d images", len(out), len(imgs))
		}
		for _, o := range out {
			if len(o) == 0 || len(o) != len(out[0]) {
				return set, nil, errors.New("querying the victim: answers of different lengths")
			}
			for _, q := range o {
				if math.IsNaN(float64(q)) || q < 0 || q > 1 {
					return set, nil, fmt.Errorf("querying the victim: %v is not a probability", q)
				}
			}
		}
		probs = append(probs, out...)
		if progress != nil {
			done := len(probs)
			rate := float64(done) / time.Since(t0).Seconds()
			progress(train.Status{Step: done, Steps: set.Len(), ImgPerSec: rate,
				ETA: time.Duration(float64(set.Len()-done) / rate * float64(time.Second))})
		}
	}
	return set, probs, nil
}

// Evaluate returns the stolen model's top-1 accuracy on test and its agreement with the
// victim (the fraction of test images on which both predict the same class). A remote
// victim is queried once per test image for the agreement.
func Evaluate(m models.Model, norm data.Normalization, v Victim, test *data.Set) (acc, agree float64, err error) {
	if test == nil || test.Len() == 0 {
		return math.NaN(), math.NaN(), errors.New("no test images")
	}
	pred := train.Argmax(train.Logits(m, test, norm, 256, nil))
	hit, same := 0, 0
	p := v.prober()
	const chunk = 256
	for s := 0; s < test.Len(); s += chunk {
		var imgs [][]uint8
		for i := s; i < min(test.Len(), s+chunk); i++ {
			imgs = append(imgs, test.Image(i))
		}
		out, err := p.Probs(imgs, test.H, test.W)
		if err != nil {
			return 0, 0, fmt.Errorf("victim's answers on the test set: %w", err)
		}
		for j, o := range out {
			i := s + j
			if pred[i] == test.Labels[i] {
				hit++
			}
			if pred[i] == argmax(o) {
				same++
			}
		}
	}
	n := float64(test.Len())
	return float64(hit) / n, float64(same) / n, nil
}

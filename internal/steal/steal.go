// Package steal simulates model theft: it produces the suspect models that ownership
// verification must catch — a direct copy, knowledge distillation, data-free ("zero-shot")
// adversarial distillation, fine-tuning, label- and logit-query extraction, a "washed" model —
// and the independently trained model that it must not flag. Every attack is a function of a
// victim, the thief's data, a recipe and a seed; its output is an ordinary model, so attacks
// chain (the copy of one attack is the victim of the next).
//
// What an attack is lives in one place, the registry in attacks.go: its name, the paper's
// label, what it assumes of the thief, the data it trains on, its default recipe and the
// function that carries it out. The CLI (move steal and its help), the experiment's table
// and its stages all read the registry. To add an attack, append an Attack to the registry
// with its run function (in attacks.go, or in a file of its own when it is long, as
// zeroshot.go is) and add its case to the tests; nothing else changes. Append rather than
// insert: the experiment derives each attack's seed from its place in the registry, so an
// insertion would change every later attack's model.
package steal

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"move/internal/classifier"
	"move/internal/data"
	"move/internal/models"
	"move/internal/nn"
	"move/internal/tensor"
	"move/internal/train"
	"move/internal/wash"
)

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

// job is one attack being carried out: what its run function works with.
type job struct {
	ctx      context.Context
	victim   classifier.Model
	thief    *data.Set
	test     *data.Set
	classes  int
	arch     string
	cfg      Config
	progress Progress
	res      *Result
}

// fresh is a new model of the stolen architecture, initialised from the recipe's seed.
func (j *job) fresh() (models.Model, error) { return models.New(j.arch, j.classes, j.cfg.Train.Seed) }

// clone is a copy of the victim's network.
func (j *job) clone() (models.Model, error) {
	if c, ok := j.victim.Local.(models.Cloner); ok {
		return c.Clone()
	}
	m, err := models.New(j.arch, j.classes, j.cfg.Train.Seed)
	if err != nil {
		return nil, err
	}
	return m, m.Store().Load(j.victim.Local.Store().Map())
}

// fit trains m on set with the recipe, recording the history and the images seen.
func (j *job) fit(m models.Model, set *data.Set, loss func(tp *nn.Tape, logits *nn.Var, x *tensor.Tensor, idx []int) *nn.Var) error {
	return j.fitWith(m, set, train.Options{Loss: loss})
}

// fitMasked fine-tunes m on the thief's data with mask re-applied after every step.
func (j *job) fitMasked(m models.Model, mask *wash.Mask) error {
	return j.fitWith(m, j.thief, train.Options{AfterStep: mask.Apply})
}

func (j *job) fitWith(m models.Model, set *data.Set, o train.Options) error {
	o.Test, o.Progress = j.test, j.progress
	r, err := train.Fit(j.ctx, m, set, j.cfg.Train, o)
	j.res.History, j.res.Images = r.Epochs, set.Len()
	return err
}

// Run carries out cfg.Attack on victim. thief is the attack's training data (Attack.Data says
// which; TrainingSet picks it); classes is the number of outputs of the stolen model; test,
// when not nil, is evaluated after every epoch (or every few hundred zero-shot iterations).
func Run(ctx context.Context, victim classifier.Model, thief *data.Set, classes int, cfg Config, test *data.Set, progress Progress) (*Result, error) {
	a, err := Lookup(cfg.Attack)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	local := victim.IsLocal()
	if a.Weights && !local {
		return nil, fmt.Errorf("the %s attack needs the victim's weights (a model file), not only its answers", a.Name)
	}
	arch := cfg.Arch
	if arch == "" {
		if !local {
			return nil, ErrArchUnknown
		}
		arch = victim.Local.Arch()
	}
	if a.KeepsArch && arch != victim.Local.Arch() {
		return nil, fmt.Errorf("the %s attack keeps the victim's architecture (%s), not %s", a.Name, victim.Local.Arch(), arch)
	}
	if err := models.Known(arch); err != nil {
		_, canClone := victim.Local.(models.Cloner)
		switch {
		case a.KeepsArch && canClone:
		case local && arch == victim.Local.Arch():
			return nil, fmt.Errorf("the %s attack needs a fresh %s: %w", a.Name, arch, ErrArchNotBuildable)
		default:
			return nil, err
		}
	}
	if a.Data.trains() && (thief == nil || thief.Len() == 0) {
		return nil, fmt.Errorf("the %s attack needs training images", a.Name)
	}
	j := &job{ctx: ctx, victim: victim, thief: thief, test: test, classes: classes, arch: arch, cfg: cfg, progress: progress,
		res: &Result{Attack: a.Name}}
	if j.res.Model, err = a.run(j); err != nil {
		return nil, fmt.Errorf("%s attack: %w", a.Name, err)
	}
	j.res.Seconds = time.Since(start).Seconds()
	return j.res, nil
}

// ErrArchUnknown: the victim is remote, so the stolen model's architecture must be given.
var ErrArchUnknown = errors.New("the victim is remote: the architecture of the stolen model must be given")

// ErrArchNotBuildable: the victim's architecture (an imported ONNX graph) cannot be
// initialised afresh, so an attack that trains a new model needs another architecture.
var ErrArchNotBuildable = errors.New("the victim's architecture cannot be built afresh: choose the stolen model's architecture")

// distillLoss is Hinton's distillation loss T²·KL(softmax(t/T) ‖ softmax(s/T)) with the
// victim as teacher, run in inference mode on the same augmented batch as the student.
func distillLoss(v classifier.Model, temperature float64) func(tp *nn.Tape, logits *nn.Var, x *tensor.Tensor, idx []int) *nn.Var {
	if !(temperature > 0) {
		temperature = 4
	}
	t := float32(temperature)
	return func(tp *nn.Tape, logits *nn.Var, x *tensor.Tensor, idx []int) *nn.Var {
		scaled := models.Eval(v.Local, x)
		for i, z := range scaled.Data {
			scaled.Data[i] = z / t
		}
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
func query(ctx context.Context, p classifier.Prober, thief *data.Set, budget int, seed uint64, progress Progress) (*data.Set, [][]float32, error) {
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

// Served is the stolen model m of attack a as its thief offers it: m itself, or, for an attack
// that only serves the victim behind a transform (Attack.Serve), that transformed service.
func Served(a Attack, m models.Model, norm data.Normalization, size int) (classifier.Model, error) {
	local := classifier.Local(m, norm, size)
	if a.Serve == "" {
		return local, nil
	}
	front, err := wash.NewInput(local, a.Serve)
	if err != nil {
		return classifier.Model{}, fmt.Errorf("the %s attack: %w", a.Name, err)
	}
	return classifier.Remote(front, size), nil
}

// Evaluate returns the stolen model's top-1 accuracy on test and its agreement with the
// victim (the fraction of test images on which both predict the same class). A remote
// victim is queried once per test image for the agreement.
func Evaluate(stolen, victim classifier.Model, test *data.Set) (acc, agree float64, err error) {
	if test == nil || test.Len() == 0 {
		return math.NaN(), math.NaN(), errors.New("no test images")
	}
	hit, same := 0, 0
	const chunk = 256
	var pred []int
	if stolen.IsLocal() {
		pred = train.Argmax(stolen.Logits(test))
	}
	for s := 0; s < test.Len(); s += chunk {
		var imgs [][]uint8
		for i := s; i < min(test.Len(), s+chunk); i++ {
			imgs = append(imgs, test.Image(i))
		}
		if !stolen.IsLocal() {
			out, err := stolen.Probs(imgs, test.H, test.W)
			if err != nil {
				return 0, 0, fmt.Errorf("the stolen model's answers on the test set: %w", err)
			}
			for _, o := range out {
				pred = append(pred, classifier.Top1(o))
			}
		}
		out, err := victim.Probs(imgs, test.H, test.W)
		if err != nil {
			return 0, 0, fmt.Errorf("victim's answers on the test set: %w", err)
		}
		for j, o := range out {
			i := s + j
			if pred[i] == test.Labels[i] {
				hit++
			}
			if pred[i] == classifier.Top1(o) {
				same++
			}
		}
	}
	n := float64(test.Len())
	return float64(hit) / n, float64(same) / n, nil
}

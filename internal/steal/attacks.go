package steal

import (
	"fmt"
	"strings"

	"move/internal/classifier"
	"move/internal/data"
	"move/internal/models"
	"move/internal/train"
)

// Data is what an attack trains on.
type Data int

const (
	// NoData: the attack trains on nothing (a copy).
	NoData Data = iota
	// Generated: the attack makes its own images (data-free distillation; Config.ZeroShot).
	Generated
	// OwnerData: the owner's (clean) training data.
	OwnerData
	// OwnerFraction: a random fraction of the owner's clean training data.
	OwnerFraction
	// ThiefData: the thief's own labelled images (the substitute data), disjoint from the
	// owner's.
	ThiefData
)

// trains reports whether the attack needs training images from its caller.
func (d Data) trains() bool { return d == OwnerData || d == OwnerFraction || d == ThiefData }

// String says what the data is.
func (d Data) String() string {
	switch d {
	case NoData:
		return "none"
	case Generated:
		return "generated images"
	case OwnerData:
		return "the owner's training data"
	case OwnerFraction:
		return "a fraction of the owner's clean training data"
	case ThiefData:
		return "the thief's own labelled data"
	}
	return fmt.Sprintf("Data(%d)", int(d))
}

// Sources are the data sets a caller has for the attacks.
type Sources struct {
	Owner    *data.Set // the owner's clean training data (OwnerData, OwnerFraction)
	Thief    *data.Set // the thief's own labelled data (ThiefData)
	Fraction float64   // OwnerFraction: the share of Owner (0: 0.1)
	Seed     uint64    // OwnerFraction: which share
}

// TrainingSet picks the attack's training data from s (nil for an attack that needs none).
func (a Attack) TrainingSet(s Sources) (*data.Set, error) {
	var set *data.Set
	switch a.Data {
	case NoData, Generated:
		return nil, nil
	case OwnerData:
		set = s.Owner
	case OwnerFraction:
		if s.Owner != nil {
			f := s.Fraction
			if f == 0 {
				f = 0.1
			}
			if !(f > 0 && f <= 1) {
				return nil, fmt.Errorf("the %s attack's fraction of the owner's data must be in (0, 1], got %g", a.Name, f)
			}
			idx, _ := data.Split(s.Owner.Len(), max(1, int(f*float64(s.Owner.Len()))), s.Seed)
			set = s.Owner.Subset(idx)
		}
	case ThiefData:
		set = s.Thief
	}
	if set == nil || set.Len() == 0 {
		return nil, fmt.Errorf("the %s attack trains on %s: none given", a.Name, a.Data)
	}
	return set, nil
}

// SubstituteSeed fixes the split of a test set into the thief's data and the images that
// judge every attack, when the thief has no data of their own (SplitSubstitute).
const SubstituteSeed = 0x7375627374

// SplitSubstitute splits test into a fixed half for the thief and the other half, which then
// evaluates every model, so that the owner's training images and the thief's never overlap.
func SplitSubstitute(test *data.Set) (thief, eval *data.Set) {
	first, rest := data.Split(test.Len(), test.Len()/2, SubstituteSeed)
	return test.Subset(first), test.Subset(rest)
}

// Recipe is an attack's default training: the paper's settings (section 6.1).
type Recipe struct {
	Epochs      int
	LR          float64
	WeightDecay float64
	BatchSize   int
}

// Apply sets c's learning rate, weight decay and batch size to the recipe's (epochs are the
// caller's to scale).
func (r Recipe) Apply(c *train.Config) {
	c.LR, c.WeightDecay, c.BatchSize = r.LR, r.WeightDecay, r.BatchSize
}

// Attack is one way to steal a model (or, for the control, not to).
type Attack struct {
	Name    string // as the CLI and the experiment's stages spell it
	Label   string // the paper's row name
	Summary string // what it assumes of the thief
	Stolen  bool   // whether its output is a stolen model (false: the independent control)
	Data    Data   // what it trains on
	Weights bool   // it needs the victim's weights, not only its answers
	// KeepsArch: the stolen model is the victim's network, so its architecture is the victim's.
	KeepsArch bool
	Recipe    Recipe // zero for attacks that do not train with the recipe
	// Washing: the thief washes a stolen model (pruning, quantisation, a transformed service;
	// washing.go). The experiment runs these only when asked (Config.Washing).
	Washing bool
	// Serve, when set, is the input transform (wash.ParseInput) of a model the thief only
	// serves: the stolen model is the victim's network behind that transform, so it is
	// verified through its answers alone.
	Serve string
	run   func(*job) (models.Model, error)
}

// registry is every attack, in the order of the paper's tables with the control last.
// Append new attacks (see the package comment).
var registry = []Attack{
	{Name: "copy", Label: "Direct-copy", Stolen: true, Data: NoData, Weights: true, KeepsArch: true,
		Summary: "the victim's weights as they are (fully accessible)",
		run:     func(j *job) (models.Model, error) { return j.clone() }},
	{Name: "distill", Label: "Distillation", Stolen: true, Data: OwnerData, Weights: true,
		Summary: "knowledge distillation on the owner's training data, soft targets at a temperature (dataset accessible)",
		Recipe:  Recipe{200, 0.1, 1e-4, 128}, run: runDistill},
	{Name: "zeroshot", Label: "Zero-shot", Stolen: true, Data: Generated, Weights: true,
		Summary: "data-free adversarial distillation: a generator seeks images where student and victim disagree (model accessible, no data)",
		run:     runZeroShot},
	{Name: "finetune", Label: "Fine-tuning", Stolen: true, Data: ThiefData, Weights: true, KeepsArch: true,
		Summary: "the victim fine-tuned on the thief's own data (model accessible)",
		Recipe:  Recipe{5, 0.01, 5e-4, 128}, run: runFineTune},
	{Name: "labelquery", Label: "Label-query", Stolen: true, Data: ThiefData,
		Summary: "a fresh model trained on the victim's top-1 answers for the thief's images (query only)",
		Recipe:  Recipe{20, 0.1, 5e-4, 128}, run: func(j *job) (models.Model, error) { return runQuery(j, true) }},
	{Name: "logitquery", Label: "Logit-query", Stolen: true, Data: ThiefData,
		Summary: "a fresh model trained to match the victim's probabilities on the thief's images (query only)",
		Recipe:  Recipe{20, 0.1, 5e-4, 128}, run: func(j *job) (models.Model, error) { return runQuery(j, false) }},
	{Name: "adaptive", Label: "Adaptive", Stolen: true, Data: OwnerFraction, Weights: true, KeepsArch: true,
		Summary: "the victim (or a stolen model) fine-tuned on a fraction of clean training data to wash the external features out",
		Recipe:  Recipe{5, 0.01, 5e-4, 128}, run: runFineTune},
	{Name: "independent", Label: "Independent", Stolen: false, Data: ThiefData,
		Summary: "a fresh model trained on the thief's own labelled data, never touching the victim (the control)",
		Recipe:  Recipe{200, 0.1, 5e-4, 128}, run: runIndependent},
}

func init() { registry = append(registry, washing...) }

// Attacks returns every attack, in the registry's order.
func Attacks() []Attack { return append([]Attack(nil), registry...) }

// Names are the attacks' names, in the registry's order.
func Names() []string {
	var ns []string
	for _, a := range registry {
		ns = append(ns, a.Name)
	}
	return ns
}

// Lookup returns the named attack, or an error naming the attacks.
func Lookup(name string) (Attack, error) {
	for _, a := range registry {
		if a.Name == name {
			return a, nil
		}
	}
	return Attack{}, fmt.Errorf("unknown attack %q (known: %s)", name, strings.Join(Names(), ", "))
}

func runFineTune(j *job) (models.Model, error) {
	m, err := j.clone()
	if err != nil {
		return nil, err
	}
	return m, j.fit(m, j.thief, nil)
}

func runIndependent(j *job) (models.Model, error) {
	m, err := j.fresh()
	if err != nil {
		return nil, err
	}
	return m, j.fit(m, j.thief, nil)
}

func runDistill(j *job) (models.Model, error) {
	m, err := j.fresh()
	if err != nil {
		return nil, err
	}
	return m, j.fit(m, j.thief, distillLoss(j.victim, j.cfg.Temperature))
}

// runQuery asks the victim about the thief's images (within the query budget) and trains a
// fresh model on its top-1 answers (labels) or to match its probabilities.
func runQuery(j *job, labels bool) (models.Model, error) {
	set, probs, err := query(j.ctx, j.victim, j.thief, j.cfg.Queries, j.cfg.Train.Seed, j.progress)
	j.res.Queries = set.Len()
	if err != nil {
		return nil, err
	}
	m, err := j.fresh()
	if err != nil {
		return nil, err
	}
	if len(probs[0]) != j.classes {
		return nil, fmt.Errorf("the victim answers %d probabilities, the stolen model has %d classes", len(probs[0]), j.classes)
	}
	if labels {
		for i, p := range probs {
			set.Labels[i] = classifier.Top1(p)
		}
		return m, j.fit(m, set, nil)
	}
	return m, j.fit(m, set, softTargetLoss(probs))
}

func runZeroShot(j *job) (models.Model, error) {
	m, err := j.fresh()
	if err != nil {
		return nil, err
	}
	j.res.History, err = zeroShot(j.ctx, j.victim, m, j.cfg, j.test, j.progress)
	z := j.cfg.ZeroShot.withDefaults()
	j.res.Images = z.Iters * (z.StudentSteps + 1) * z.Batch // generated
	return m, err
}

// Chain is a multi-stage theft (the paper's Table 7): each stage's stolen model is the victim
// of the next. Its first stage is an attack of the registry; the experiment takes that
// attack's suspect and applies the later stages to it.
type Chain struct {
	Name   string   // e.g. "distill+finetune"
	Label  string   // the table's row name
	Stages []string // attack names, in order
}

// chains are the multi-stage thefts the experiment runs. Append new ones.
var chains = []Chain{
	{Name: "distill+finetune", Label: "Distill→FT", Stages: []string{"distill", "finetune"}},
	{Name: "labelquery+finetune", Label: "Label-q→FT", Stages: []string{"labelquery", "finetune"}},
	{Name: "zeroshot+finetune", Label: "Zero-shot→FT", Stages: []string{"zeroshot", "finetune"}},
}

// Chains returns the multi-stage thefts, each checked against the registry.
func Chains() []Chain {
	out := make([]Chain, len(chains))
	for i, c := range chains {
		out[i] = Chain{Name: c.Name, Label: c.Label, Stages: append([]string(nil), c.Stages...)}
	}
	return out
}

package steal

import (
	"fmt"

	"move/internal/data"
	"move/internal/models"
	"move/internal/wash"
)

// washing are the attacks of a thief who has read the MOVE paper and washes a stolen model
// before serving it (package wash): magnitude pruning with and without fine-tuning,
// fine-pruning, int8 quantisation, distillation under strong augmentation, and the victim
// served behind a JPEG, blur or augmentation-averaging front. They are appended to the
// registry after the paper's attacks; the experiment runs them when asked.
var washing = []Attack{
	pruneAttack(0.3, false), pruneAttack(0.5, false), pruneAttack(0.7, false),
	pruneAttack(0.3, true), pruneAttack(0.5, true), pruneAttack(0.7, true),
	{Name: "fineprune", Label: "Fine-pruning", Stolen: true, Data: ThiefData, Weights: true, KeepsArch: true, Washing: true,
		Summary: "the victim's least active last-layer channels on the thief's clean data pruned (half of them), then fine-tuned on that data (Liu et al. 2018)",
		Recipe:  Recipe{5, 0.01, 5e-4, 128}, run: runFinePrune},
	{Name: "quantize8", Label: "Int8", Stolen: true, Data: NoData, Weights: true, KeepsArch: true, Washing: true,
		Summary: "the victim's weights quantised to 8 bits per tensor (256 levels)",
		run: func(j *job) (models.Model, error) {
			m, err := j.clone()
			if err != nil {
				return nil, err
			}
			return m, wash.Quantize(m, 8)
		}},
	{Name: "augdistill", Label: "Distill+aug", Stolen: true, Data: OwnerData, Weights: true, Washing: true,
		Summary: "distillation on the owner's training data under strong augmentation (colour jitter 0.4, blur up to 1.5 px) that could wash a style out",
		Recipe:  Recipe{200, 0.1, 1e-4, 128}, run: runAugDistill},
	servedAttack("jpeg50", "Served JPEG q50", "jpeg:50", "the victim served behind a front that JPEG-compresses each query image at quality 50"),
	servedAttack("blur1", "Served blur", "blur:1", "the victim served behind a front that blurs each query image (Gaussian, sigma 1 px)"),
	servedAttack("augavg", "Served aug-avg", "augavg", "the victim served answering the mean of its probabilities over the five augmentations the black-box features use, so their differences vanish"),
}

// StrongAugment is the augmentation of the augdistill attack's student: the standard crop and
// flip, colour jitter and blur.
var StrongAugment = data.Augment{Pad: 4, Flip: true, Jitter: 0.4, Blur: 1.5}

func pruneAttack(fraction float64, finetune bool) Attack {
	pct := int(100*fraction + 0.5)
	a := Attack{Name: fmt.Sprintf("prune%d", pct), Label: fmt.Sprintf("Prune %d%%", pct), Stolen: true, Data: NoData,
		Weights: true, KeepsArch: true, Washing: true,
		Summary: fmt.Sprintf("the %d%% smallest-magnitude weights of each layer of the victim zeroed", pct)}
	if !finetune {
		a.run = func(j *job) (models.Model, error) {
			m, err := j.clone()
			if err != nil {
				return nil, err
			}
			_, err = wash.Prune(m, fraction)
			return m, err
		}
		return a
	}
	a.Name += "ft"
	a.Label += "+FT"
	a.Summary += ", then fine-tuned on the thief's data with the pruned weights held at zero"
	a.Data, a.Recipe = ThiefData, Recipe{5, 0.01, 5e-4, 128}
	a.run = func(j *job) (models.Model, error) {
		m, err := j.clone()
		if err != nil {
			return nil, err
		}
		mask, err := wash.Prune(m, fraction)
		if err != nil {
			return nil, err
		}
		return m, j.fitMasked(m, mask)
	}
	return a
}

func servedAttack(name, label, spec, summary string) Attack {
	return Attack{Name: name, Label: label, Stolen: true, Data: NoData, Weights: true, KeepsArch: true, Washing: true, Serve: spec,
		Summary: summary + " (verified black-box only)",
		run:     func(j *job) (models.Model, error) { return j.clone() }}
}

func runFinePrune(j *job) (models.Model, error) {
	m, err := j.clone()
	if err != nil {
		return nil, err
	}
	mask, _, err := wash.FinePrune(m, j.thief, j.cfg.Train.Norm, 0.5)
	if err != nil {
		return nil, err
	}
	return m, j.fitMasked(m, mask)
}

func runAugDistill(j *job) (models.Model, error) {
	m, err := j.fresh()
	if err != nil {
		return nil, err
	}
	j.cfg.Train.Augment = StrongAugment
	return m, j.fit(m, j.thief, distillLoss(j.victim, j.cfg.Temperature))
}

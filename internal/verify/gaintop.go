package verify

import (
	"errors"
	"fmt"
	"math"
	"sort"

	"move/internal/classifier"
	"move/internal/features"
	"move/internal/meta"
	"move/internal/watermark"
)

// GainTopAugs is how many of the paper's five augmentations (features.Augment) a
// style-gain-top gain averages over, recorded as the meta file's Views. Each key image's gain
// is then the mean over its identity, mirrored and shifted versions: the test reads the same m
// images, with less noise on each. Measured on CIFAR-10 quick (README): at m = 10 it takes
// distillation from p 0.032 to 0.0087 and the query students from 0.006 to 0.002, and leaves
// the innocents at p 0.27-0.68.
const GainTopAugs = 5

// GainTopRankers are the owner's models a style-gain-top ranking reads: the victim, the
// owner's further models that answer like it (Positives: students the owner distilled from
// the victim), the benign models and the owner's further models that answer like them
// (Negatives: students of the benign models).
type GainTopRankers struct {
	Victim                       classifier.Model
	Positives, Benign, Negatives []classifier.Model
	// Shortfall is the most the benign models and negatives may fall short of the victim's
	// accuracy on the key's originals (0: DefaultRefShortfall; 1: never refused).
	Shortfall float64
}

// GainTopRecord is the meta file of the style-gain-top family (features.GainTop): no
// classifier; HeldOutIdx holds every key sample with control versions, ranked by how much more
// the victim (and, with Positives, the owner's students of it: the mean over them) gains from
// the owner's style than the benign models (and Negatives) do (a model's gain on a key image:
// its true-class probability on the owner-styled version minus its mean over the
// control-styled ones, averaged over augs of the paper's augmentations, recorded as Views;
// GainTopAugs unless told). The owner ranks with its own models only, so the reference a test
// is run against and the suspect play no part in which images are read. Benign models (and
// negatives) more than DefaultRefShortfall less accurate than the victim on the key's
// originals are refused (ErrWeakRanking). The caller adds the hashes and provenance.
func GainTopRecord(r GainTopRankers, pairs []watermark.Pair, augs int) (*meta.Classifier, error) {
	if augs == 0 {
		augs = GainTopAugs
	}
	if len(r.Benign) == 0 {
		return nil, errors.New("ranking the key images needs at least one benign model")
	}
	controls := 0 // the fewest control styles of a sample that has them
	var idx []int
	for k, p := range pairs {
		if len(p.Controls) > 0 {
			if controls == 0 || len(p.Controls) < controls {
				controls = len(p.Controls)
			}
			idx = append(idx, k)
		}
	}
	if len(idx) < 2 || controls == 0 {
		return nil, fmt.Errorf("%d key samples with control styles: the style-gain test needs a key with controls (move embed --controls, or --add-controls)", len(idx))
	}
	views := 1 + controls
	if err := rankersFair(r, pairs, idx); err != nil {
		return nil, err
	}
	gains := func(name string, ms []classifier.Model) ([][]float64, error) {
		out := make([][]float64, len(ms))
		for i, m := range ms {
			g, _, err := styleGains(m, pairs, idx, views, augs, nil)
			if err != nil {
				if len(ms) > 1 {
					name = fmt.Sprintf("%s %d", name, i+1)
				}
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			out[i] = g
		}
		return out, nil
	}
	gv, err := gains("victim", []classifier.Model{r.Victim})
	if err != nil {
		return nil, err
	}
	gp, err := gains("positive model", r.Positives)
	if err != nil {
		return nil, err
	}
	gb, err := gains("benign model", r.Benign)
	if err != nil {
		return nil, err
	}
	gn, err := gains("negative model", r.Negatives)
	if err != nil {
		return nil, err
	}
	all := append(gb, gn...) // the benign models' and negatives' gains
	base := make([]float64, len(idx))
	for _, g := range all {
		for j, x := range g {
			base[j] += x / float64(len(all))
		}
	}
	info := meta.Info{Mode: features.White, Layout: features.GainTop, Controls: controls, Views: augs}
	gateP, err := positiveGate(gv[0], gp, all)
	if err != nil {
		return nil, err
	}
	var kept [][]float64
	for i, g := range gp {
		info.PositiveP = append(info.PositiveP, gateP[i])
		if gateP[i] < PositiveGateAlpha {
			kept = append(kept, g)
			info.PositivesKept = append(info.PositivesKept, i)
		}
	}
	score := make([]float64, len(idx))
	for j := range score {
		sum := gv[0][j]
		for _, g := range kept {
			sum += g[j]
		}
		score[j] = sum/float64(1+len(kept)) - base[j]
	}
	order := rankDesc(score)
	if r.Victim.Local != nil {
		info.Arch, info.Classes = r.Victim.Local.Arch(), r.Victim.Local.Classes()
	}
	for _, i := range order {
		info.HeldOutIdx = append(info.HeldOutIdx, idx[i])
	}
	return meta.Record(info), nil
}

// rankDesc returns the indices of score from the largest value to the smallest (stable).
func rankDesc(score []float64) []int {
	order := make([]int, len(score))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return score[order[a]] > score[order[b]] })
	return order
}

// positiveGate returns each positive's gate p-value (gains gp, per positive and key image):
// the largest, over the benign models and negatives (gains all) each held out in turn, of the
// paired test that the positive gains more than the held-out model, by the 0.01 margin, on the
// victim's (gains gv) top PositiveGateM images chosen against the others. A positive joins
// the ranking only if it gains where the victim gains; where the owner's students inherit
// nothing of the victim's answer to the style, their gains are noise and would pick images
// that say nothing about the victim (measured on the Fashion-MNIST demo: an innocent
// accused). Read against the models that chose the images, where those gain least by
// selection, any model would pass. With fewer than two models to choose and read against,
// every p-value is 1.
func positiveGate(gv []float64, gp, all [][]float64) ([]float64, error) {
	gateP := make([]float64, len(gp))
	if len(all) < 2 {
		for i := range gateP {
			gateP[i] = 1
		}
		return gateP, nil
	}
	for out := range all {
		score := make([]float64, len(gv))
		for k, g := range all {
			if k != out {
				for j, x := range g {
					score[j] -= x / float64(len(all)-1)
				}
			}
		}
		for j := range score {
			score[j] += gv[j]
		}
		top := rankDesc(score)[:min(PositiveGateM, len(score))]
		for i, g := range gp {
			a, b := make([]float64, len(top)), make([]float64, len(top))
			for k, j := range top {
				a[k], b[k] = g[j], all[out][j]
			}
			t, err := aboveMargin(a, b, 0.01, false)
			if err != nil {
				return nil, fmt.Errorf("positive model %d: %w", i+1, err)
			}
			gateP[i] = math.Max(gateP[i], t.P)
		}
	}
	return gateP, nil
}

// PositiveGateM and PositiveGateAlpha are the gate a positive of a style-gain-top ranking
// passes (positiveGate): its gains on the victim's top PositiveGateM images above a held-out
// benign model's at PositiveGateAlpha. Measured (README): on CIFAR-10 quick the owner's two
// students of the victim pass it (p = 4.1e-5 and 3.1e-4); on the Fashion-MNIST demo neither
// does (0.48, 1).
const (
	PositiveGateM     = 100
	PositiveGateAlpha = 0.01
)

// ErrWeakRanking is the error of a style-gain-top ranking with a benign model much weaker
// than the victim.
var ErrWeakRanking = errors.New("a benign model much weaker than the victim ranks the images where any trained model gains from restyling")

// rankersFair refuses benign models and negatives that answer the key's originals (of samples
// idx) more than r.Shortfall worse than the victim. Against weak benign models the
// ranking picks the images on which any trained model gains from the owner's style, not those
// where the victim's gain is its own: on CIFAR-10 quick, ranked against a one-epoch model, a
// well-trained innocent scored p = 0.056 against the experiment's reference (0.43 ranked
// against the real benign models), and 4e-4 against a one-epoch reference.
func rankersFair(r GainTopRankers, pairs []watermark.Pair, idx []int) error {
	most := r.Shortfall
	if most == 0 {
		most = DefaultRefShortfall
	}
	if most >= 1 {
		return nil
	}
	va, err := accuracyOn(r.Victim, pairs, idx)
	if err != nil {
		return fmt.Errorf("victim: %w", err)
	}
	for _, g := range []struct {
		name string
		ms   []classifier.Model
	}{{"benign model", r.Benign}, {"negative model", r.Negatives}} {
		for i, m := range g.ms {
			a, err := accuracyOn(m, pairs, idx)
			if err != nil {
				return fmt.Errorf("%s %d: %w", g.name, i+1, err)
			}
			if va-a > most {
				return fmt.Errorf("%s %d answers the key's originals %.1f%% right, the victim %.1f%%: %w; train the benign models as the victim was trained (more than %.0f points short is refused)",
					g.name, i+1, 100*a, 100*va, ErrWeakRanking, 100*most)
			}
		}
	}
	return nil
}

// GainTop runs the style-gain test of the black-box verdict (Result.Gain: per key image, the
// suspect's gain against the reference's, paired, H1: larger by more than o.GainMargin,
// default 0.01) on the first o.M (default 10) key samples of c's ranking (GainTopRecord), at
// most a third of them of one class (SpreadClasses): the images on which the victim's answer
// is most specific to the owner's style, each gain averaged over the ranking's augmentations
// (a meta file without them: the images alone). It reads the
// suspect's answers only. A suspect that is no working classifier on the owner's images, or
// one the reference falls too far short of (Options.RefShortfall), is "inconclusive", as
// under Run.
func GainTop(c *meta.Classifier, suspect, benign classifier.Model, pairs []watermark.Pair, o Options) (*Result, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if c.Info.Layout != features.GainTop {
		return nil, fmt.Errorf("a %s meta file is not a style-gain-top ranking", c.Info.Layout)
	}
	if o.M <= 0 {
		o.M = 10
	}
	if o.Alpha <= 0 {
		o.Alpha = 0.01
	}
	ranked := c.Info.HeldOutIdx
	if len(ranked) < 2 {
		return nil, errors.New("the ranking holds fewer than 2 key samples")
	}
	for _, k := range ranked {
		if k < 0 || k >= len(pairs) || len(pairs[k].Controls) < c.Info.Controls {
			return nil, fmt.Errorf("ranked key sample %d is not in the key with %d control styles: wrong key?", k, c.Info.Controls)
		}
	}
	o.GainM = min(o.M, len(ranked))
	ranked = SpreadClasses(ranked, pairs, o.GainM)
	res := &Result{Mode: features.White, Alpha: o.Alpha}
	if err := gainTest(res, suspect, benign, pairs, ranked, 1+c.Info.Controls, max(1, c.Info.Views), o, true); err != nil {
		return nil, err
	}
	res.M, res.Samples = res.GainM, ranked[:res.GainM]
	res.Test, res.P, res.PMedian, res.PHarmonic = *res.Gain, res.Gain.P, res.Gain.P, res.Gain.P
	res.DeltaMu, res.MinDelta = res.Gain.DeltaMu, res.GainMargin
	accIdx := ranked
	if suspect.IsLocal() {
		err := res.keyAccuracyLocal(suspect, pairs, ranked)
		if err != nil {
			return nil, err
		}
	} else {
		probs, err := suspect.Probs(origs(pairs, res.Samples), pairs[res.Samples[0]].H, pairs[res.Samples[0]].W)
		if err != nil {
			return nil, fmt.Errorf("suspect: %w", err)
		}
		res.keyAccuracy(argmaxes(probs), res.Samples, pairs, len(probs[0]))
		accIdx = res.Samples
	}
	if err := res.refAccuracy(benign, pairs, accIdx, o); err != nil {
		return nil, err
	}
	res.decide(o.Alpha, true)
	return res, nil
}

// SpreadClasses returns ranking with its first m samples chosen in rank order but at most
// MaxClassShare(m) of one class (the rest follow, in rank order): the m images of a
// style-gain-top test come from at least three classes when the ranking has them. The paired
// test treats the m images as independent draws, but a model's answer to a style moves with
// its bias on a class: on ten images of one class, the difference between two innocent models'
// biases reads as ten agreeing draws. Measured (README, stop 39): on CIFAR-10's first four
// classes the ten top images were all automobiles, and the independent model was accused
// (p 0.0090, delta-mu 0.24); with the cap it gets 0.079, the students stay flagged
// (distillation 3.9e-5, label-query 3.6e-4, logit-query 1.9e-4), and CIFAR-10 quick's ten,
// four of one class at most, are unchanged.
func SpreadClasses(ranking []int, pairs []watermark.Pair, m int) []int {
	most := MaxClassShare(m)
	count := map[int]int{}
	first := make([]int, 0, len(ranking))
	var rest []int
	for _, k := range ranking {
		if len(first) < m && count[pairs[k].Label] < most {
			count[pairs[k].Label]++
			first = append(first, k)
		} else {
			rest = append(rest, k)
		}
	}
	// Fewer than three classes in the ranking: fill the m from the rest, in rank order.
	if len(first) < m {
		need := min(m-len(first), len(rest))
		first, rest = append(first, rest[:need]...), rest[need:]
		pos := make(map[int]int, len(ranking))
		for i, k := range ranking {
			pos[k] = i
		}
		sort.SliceStable(first, func(a, b int) bool { return pos[first[a]] < pos[first[b]] })
	}
	return append(first, rest...)
}

// MaxClassShare is the most images of one class among a style-gain-top test's m: a third,
// rounded up.
func MaxClassShare(m int) int { return (m + 2) / 3 }

// origs returns the originals of key samples idx.
func origs(pairs []watermark.Pair, idx []int) [][]uint8 {
	out := make([][]uint8, len(idx))
	for i, k := range idx {
		out[i] = pairs[k].Orig
	}
	return out
}

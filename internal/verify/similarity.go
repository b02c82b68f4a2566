package verify

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"move/internal/classifier"
	"move/internal/features"
	"move/internal/stats"
	"move/internal/watermark"
)

// Similar tests suspect against benign with the input-gradient similarity family
// (features.GradSimilarity) on m of the key samples held (the owner-styled images): each
// image's score is the cosine between the model's input gradient and the victim's
// (features.Similarity), averaged over its features.MaxViews augmented views, and the
// suspect's scores are paired against the benign model's (one-tailed paired t-test,
// H1: mean(S) − mean(B) > o.MinDelta): does the suspect's loss fall the way the victim's does,
// more than a clean model's trained on the victim's own data? The images are drawn as Run draws them from the same
// held-out list and seed. A suspect that is no working classifier on the owner's images is
// "inconclusive", as under Run.
func Similar(victim, suspect, benign classifier.Model, pairs []watermark.Pair, held []int, o Options) (*Result, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if victim.Local == nil {
		return nil, errors.New("the similarity test needs the victim's weights")
	}
	for _, x := range []struct {
		name string
		m    classifier.Model
	}{{"suspect", suspect}, {"benign model", benign}} {
		if x.m.Local == nil {
			return nil, fmt.Errorf("%s: white-box features need the model's weights (a model file), not an endpoint", x.name)
		}
	}
	if o.M <= 0 {
		o.M = 10
	}
	if o.Alpha <= 0 {
		o.Alpha = 0.01
	}
	if len(held) < 2 {
		return nil, errors.New("fewer than 2 held-out key samples")
	}
	for _, k := range held {
		if k < 0 || k >= len(pairs) {
			return nil, fmt.Errorf("held-out sample %d is not in the key (%d samples): wrong key?", k, len(pairs))
		}
	}
	m := min(o.M, len(held))
	rng := rand.New(rand.NewPCG(o.Seed, 0x76657269))
	perm := rng.Perm(len(held))[:m]
	idx := make([]int, m)
	for i, j := range perm {
		idx[i] = held[j]
	}
	h, w := pairs[idx[0]].H, pairs[idx[0]].W
	// grads returns a model's unit input gradients on each view of the sampled images.
	grads := func(name string, mod classifier.Model) ([][][]float64, error) {
		out := make([][][]float64, features.MaxViews)
		for v := range features.MaxViews {
			imgs, labels := make([][]uint8, m), make([]int, m)
			for i, k := range idx {
				imgs[i], labels[i] = features.View(pairs[k].Styled, h, w, v), pairs[k].Label
			}
			x, y := whiteBatch(mod, imgs, labels, h, w)
			g, err := features.UnitInputGradients(mod.Local, x, y)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			out[v] = g
		}
		return out, nil
	}
	gv, err := grads("victim", victim)
	if err != nil {
		return nil, err
	}
	score := func(name string, mod classifier.Model) ([]float64, error) {
		g, err := grads(name, mod)
		if err != nil {
			return nil, err
		}
		out := make([]float64, m)
		for v := range features.MaxViews {
			s, err := features.Similarity(g[v], gv[v])
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			for i, x := range s {
				out[i] += x / float64(features.MaxViews)
			}
		}
		return out, nil
	}
	ps, err := score("suspect", suspect)
	if err != nil {
		return nil, err
	}
	pb, err := score("benign model", benign)
	if err != nil {
		return nil, err
	}
	shifted := make([]float64, m)
	for i, v := range pb {
		shifted[i] = v + o.MinDelta
	}
	t, err := stats.PairedT(ps, shifted, stats.Greater)
	if err != nil {
		return nil, err
	}
	t.DeltaMu += o.MinDelta
	res := &Result{Mode: features.White, M: m, Alpha: o.Alpha, Samples: idx, Test: t, ProbSuspect: ps, ProbBenign: pb,
		P: t.P, PMedian: t.P, PHarmonic: t.P, DeltaMu: t.DeltaMu, MinDelta: o.MinDelta}
	// Is the suspect a working classifier on the owner's images (every held-out original)?
	orig := make([][]uint8, len(held))
	for i, k := range held {
		orig[i] = pairs[k].Orig
	}
	probs, err := suspect.Probs(orig, h, w)
	if err != nil {
		return nil, fmt.Errorf("suspect: %w", err)
	}
	correct := 0
	for i, p := range argmaxes(probs) {
		if p == pairs[held[i]].Label {
			correct++
		}
	}
	res.KeyAccuracyN = len(held)
	res.KeyAccuracy = float64(correct) / float64(len(held))
	res.KeyAccuracyP = stats.BinomialUpper(correct, len(held), 1/float64(max(2, len(probs[0]))))
	switch {
	case res.KeyAccuracyP >= o.Alpha:
		res.Verdict = Inconclusive
	case res.P < o.Alpha && res.DeltaMu >= res.MinDelta:
		res.Verdict, res.Stolen = Stolen, true
	default:
		res.Verdict = NotStolen
	}
	return res, nil
}

package verify

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"move/internal/classifier"
	"move/internal/features"
	"move/internal/meta"
	"move/internal/watermark"
)

// SimilarityTest is the input-gradient similarity test (features.GradSimilarity) of one
// victim against one benign reference on m of the key samples held (the owner-styled
// images): each image's score is the cosine between a model's input gradient and the
// victim's (features.Similarity), averaged over its features.MaxViews augmented views, and a
// suspect's scores are paired against the benign model's (one-tailed paired t-test,
// H1: mean(S) − mean(B) > o.MinDelta): does the suspect's loss fall the way the victim's does,
// more than a clean model's trained on the victim's own data? The images are drawn as Run
// draws them from the same held-out list and seed. The victim's gradients and the reference's
// scores are computed once, for every suspect the test reads.
type SimilarityTest struct {
	o      Options
	pairs  []watermark.Pair
	held   []int
	idx    []int         // the m sampled key samples
	victim [][][]float64 // [view][image] the victim's unit input gradients
	ref    []float64     // the benign reference's scores
	refAcc Result        // the reference's accuracy on the held-out originals (Result.RefKeyAccuracy)
}

// SimilarityRecord is the meta file of the similarity family (meta.Record) for victim and its
// key: no classifier, and every key sample one a verification may draw (nothing is spent on
// training). The caller adds the hashes and provenance.
func SimilarityRecord(victim classifier.Model, pairs []watermark.Pair) (*meta.Classifier, error) {
	if victim.Local == nil {
		return nil, errors.New("the similarity test needs the victim's weights")
	}
	if len(pairs) < 2 {
		return nil, fmt.Errorf("%d transformed samples in the key: too few to verify on", len(pairs))
	}
	info := meta.Info{Mode: features.White, Layout: features.GradSimilarity, Arch: victim.Local.Arch(), Classes: victim.Local.Classes()}
	for k := range pairs {
		info.HeldOutIdx = append(info.HeldOutIdx, k)
	}
	return meta.Record(info), nil
}

// NewSimilarityTest prepares the test of victim against benign (see SimilarityTest).
func NewSimilarityTest(victim, benign classifier.Model, pairs []watermark.Pair, held []int, o Options) (*SimilarityTest, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if victim.Local == nil {
		return nil, errors.New("the similarity test needs the victim's weights")
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
	perm := rand.New(rand.NewPCG(o.Seed, 0x76657269)).Perm(len(held))[:m]
	t := &SimilarityTest{o: o, pairs: pairs, held: held, idx: make([]int, m)}
	for i, j := range perm {
		t.idx[i] = held[j]
	}
	var err error
	if t.victim, err = t.grads("victim", victim); err != nil {
		return nil, err
	}
	if t.ref, err = t.score("benign model", benign); err != nil {
		return nil, err
	}
	if err := t.refAcc.refAccuracy(benign, pairs, held, o); err != nil {
		return nil, err
	}
	return t, nil
}

// grads returns a model's unit input gradients on each view of the sampled images.
func (t *SimilarityTest) grads(name string, mod classifier.Model) ([][][]float64, error) {
	if mod.Local == nil {
		return nil, fmt.Errorf("%s: white-box features need the model's weights (a model file), not an endpoint", name)
	}
	h, w := t.pairs[t.idx[0]].H, t.pairs[t.idx[0]].W
	out := make([][][]float64, features.MaxViews)
	for v := range features.MaxViews {
		imgs, labels := make([][]uint8, len(t.idx)), make([]int, len(t.idx))
		for i, k := range t.idx {
			imgs[i], labels[i] = features.View(t.pairs[k].Styled, h, w, v), t.pairs[k].Label
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

// score returns a model's per-image scores: the mean over views of its gradients' cosine
// with the victim's.
func (t *SimilarityTest) score(name string, mod classifier.Model) ([]float64, error) {
	g, err := t.grads(name, mod)
	if err != nil {
		return nil, err
	}
	out := make([]float64, len(t.idx))
	for v := range features.MaxViews {
		s, err := features.Similarity(g[v], t.victim[v])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		for i, x := range s {
			out[i] += x / float64(features.MaxViews)
		}
	}
	return out, nil
}

// Run tests suspect. A suspect that is no working classifier on the owner's images, or one the
// reference falls too far short of, is "inconclusive", as under the package's Run.
func (t *SimilarityTest) Run(suspect classifier.Model) (*Result, error) {
	ps, err := t.score("suspect", suspect)
	if err != nil {
		return nil, err
	}
	tt, err := aboveMargin(ps, t.ref, t.o.MinDelta, false)
	if err != nil {
		return nil, err
	}
	res := &Result{Mode: features.White, M: len(t.idx), Alpha: t.o.Alpha, Samples: t.idx, Test: tt, ProbSuspect: ps,
		ProbBenign: t.ref, P: tt.P, PMedian: tt.P, PHarmonic: tt.P, DeltaMu: tt.DeltaMu, MinDelta: t.o.MinDelta}
	if err := res.keyAccuracyLocal(suspect, t.pairs, t.held); err != nil {
		return nil, err
	}
	res.RefKeyAccuracy, res.RefShortfall = t.refAcc.RefKeyAccuracy, t.refAcc.RefShortfall
	res.decide(t.o.Alpha, true)
	return res, nil
}

// Similar runs the similarity test of victim against benign on one suspect (SimilarityTest).
func Similar(victim, suspect, benign classifier.Model, pairs []watermark.Pair, held []int, o Options) (*Result, error) {
	t, err := NewSimilarityTest(victim, benign, pairs, held, o)
	if err != nil {
		return nil, err
	}
	return t.Run(suspect)
}

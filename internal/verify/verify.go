// Package verify is MOVE's ownership verification: it trains the meta-classifier on the
// victim's and the benign model's features over part of the watermark key's transformed
// images, and tests a suspect against the benign model on the other part with a one-tailed
// paired t-test (H1: the suspect looks more like the victim than the benign model does).
package verify

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"move/internal/data"
	"move/internal/features"
	"move/internal/meta"
	"move/internal/models"
	"move/internal/stats"
	"move/internal/watermark"
)

// Model is a classifier under test, local (white-box capable) or behind a prober.
type Model struct {
	Local  models.Model // nil for a remote model
	Norm   data.Normalization
	Size   int
	Prober features.Prober // nil: derived from Local
}

func (m Model) prober() features.Prober {
	if m.Prober != nil {
		return m.Prober
	}
	return features.LocalProber{Model: m.Local, Norm: m.Norm, Size: m.Size}
}

// Features computes the mode's features of m on the given key pairs.
func Features(mode, layout string, m Model, pairs []watermark.Pair) ([][]float32, error) {
	if len(pairs) == 0 {
		return nil, errors.New("no key images")
	}
	h, w := pairs[0].H, pairs[0].W
	switch mode {
	case "white":
		if m.Local == nil {
			return nil, errors.New("white-box features need the model's weights (a model file), not an endpoint")
		}
		s := &data.Set{H: h, W: w}
		for _, p := range pairs {
			img := p.Styled
			if m.Size > 0 && (h != m.Size || w != m.Size) {
				img = data.Resize(img, h, w, m.Size, m.Size)
			}
			s.Pixels = append(s.Pixels, img...)
			s.Labels = append(s.Labels, p.Label)
		}
		if m.Size > 0 {
			s.H, s.W = m.Size, m.Size
		}
		idx := make([]int, s.Len())
		for i := range idx {
			idx[i] = i
		}
		x, y := data.Batch(s, idx, m.Norm, data.Augment{}, nil)
		return features.WhiteBox(m.Local, x, y, layout)
	case "black":
		orig := make([][]uint8, len(pairs))
		styled := make([][]uint8, len(pairs))
		for i, p := range pairs {
			orig[i], styled[i] = p.Orig, p.Styled
		}
		return features.BlackBox(m.prober(), orig, styled, h, w)
	}
	return nil, fmt.Errorf("unknown mode %q (white or black)", mode)
}

// Structure describes the white-box vector of a local model on the key's images.
func Structure(m Model, pairs []watermark.Pair) (*features.Structure, error) {
	if m.Local == nil {
		return nil, errors.New("white-box features need the model's weights (a model file), not an endpoint")
	}
	size := m.Size
	if size <= 0 && len(pairs) > 0 {
		size = pairs[0].H
	}
	return features.Describe(m.Local, size)
}

// Compatible checks that white-box classifier c can read m's features: the same feature
// definition and a model whose weights line up with the victim's. It returns m's structure.
func Compatible(c *meta.Classifier, m Model, pairs []watermark.Pair) (*features.Structure, error) {
	if c.Info.Form != features.Form {
		return nil, fmt.Errorf("the meta-classifier was trained on white-box features of form %q; this move computes form %q (gradients of the batch-norm-folded model): train it again with move meta", c.Info.Form, features.Form)
	}
	s, err := Structure(m, pairs)
	if err != nil {
		return nil, err
	}
	if s.Signature != c.Info.Signature {
		what := "a " + m.Local.Arch()
		if m.Local.Arch() == "onnx" {
			what = fmt.Sprintf("an ONNX graph with %d weight tensors in its folded form", len(s.Parts))
		}
		return nil, fmt.Errorf("its weights do not line up with the victim's: it is %s, the classifier was trained on %s gradients; white-box features only compare within one architecture.\n"+
			"Train a victim copy (on the watermarked set) and a benign copy (on the clean set) in the suspect's architecture with move train, train a meta-classifier on them with move meta, and verify with that; or verify black-box (--mode black), which needs no matching architecture",
			what, c.Info.Arch)
	}
	return s, nil
}

// MetaOptions configure TrainMeta.
type MetaOptions struct {
	Mode, Layout string
	HeldOut      float64 // fraction of key samples kept for verification (default 0.5)
	MaxTrain     int     // at most this many key samples train the classifier (default 500)
	Seed         uint64
	Fit          meta.Options
}

// TrainMeta splits the key's pairs into training and held-out samples, computes features of
// the victim (label 1) and of every benign model (label 0) on the training ones and fits the
// meta-classifier. With several benign models the victim's features are repeated once per
// benign model so that both classes weigh the same. The split and the held-out accuracy are
// recorded in the classifier's Info.
func TrainMeta(victim Model, benign []Model, pairs []watermark.Pair, o MetaOptions) (*meta.Classifier, error) {
	if len(benign) == 0 {
		return nil, errors.New("no benign model")
	}
	if o.HeldOut <= 0 || o.HeldOut >= 1 {
		o.HeldOut = 0.5
	}
	if o.MaxTrain <= 0 {
		o.MaxTrain = 500
	}
	if o.Mode == "black" {
		o.Layout = "prob-diff-5aug"
	}
	n := len(pairs)
	nh := int(float64(n) * o.HeldOut)
	if nh < 2 || n-nh < 2 {
		return nil, fmt.Errorf("the key has %d transformed samples: too few to train and verify", n)
	}
	perm := rand.New(rand.NewPCG(o.Seed, 0x73706c)).Perm(n)
	held, trn := perm[:nh], perm[nh:]
	if len(trn) > o.MaxTrain {
		trn = trn[:o.MaxTrain]
	}
	sub := func(idx []int) []watermark.Pair {
		out := make([]watermark.Pair, len(idx))
		for i, k := range idx {
			out[i] = pairs[k]
		}
		return out
	}
	xs, ys, err := labelled(o, victim, benign, sub(trn))
	if err != nil {
		return nil, err
	}
	info := meta.Info{Mode: o.Mode, Layout: o.Layout, TrainIdx: trn, HeldOutIdx: held}
	if victim.Local != nil {
		info.Arch, info.Classes = victim.Local.Arch(), victim.Local.Classes()
	}
	if o.Mode == "white" {
		sv, err := Structure(victim, pairs)
		if err != nil {
			return nil, fmt.Errorf("victim: %w", err)
		}
		for i, b := range benign {
			sb, err := Structure(b, pairs)
			if err != nil {
				return nil, fmt.Errorf("benign model %d: %w", i+1, err)
			}
			if sb.Signature != sv.Signature {
				return nil, fmt.Errorf("benign model %d's weights do not line up with the victim's (a different architecture?): white-box features compare within one architecture", i+1)
			}
		}
		info.Form, info.Signature = features.Form, sv.Signature
	}
	o.Fit.Seed = o.Seed
	c, err := meta.Fit(xs, ys, info, o.Fit)
	if err != nil {
		return nil, err
	}
	// Held-out accuracy on (up to MaxTrain) held-out samples.
	hv := held
	if len(hv) > o.MaxTrain {
		hv = hv[:o.MaxTrain]
	}
	hx, hy, err := labelled(o, victim, benign, sub(hv))
	if err != nil {
		return nil, err
	}
	c.Info.HeldOutAcc = c.Accuracy(hx, hy)
	return c, nil
}

// labelled computes the victim's features (label 1, repeated once per benign model) and every
// benign model's (label 0) on pairs.
func labelled(o MetaOptions, victim Model, benign []Model, pairs []watermark.Pair) ([][]float32, []int, error) {
	fv, err := Features(o.Mode, o.Layout, victim, pairs)
	if err != nil {
		return nil, nil, fmt.Errorf("victim features: %w", err)
	}
	var xs [][]float32
	var ys []int
	for i, b := range benign {
		fb, err := Features(o.Mode, o.Layout, b, pairs)
		if err != nil {
			return nil, nil, fmt.Errorf("benign model %d features: %w", i+1, err)
		}
		xs = append(append(xs, fv...), fb...)
		for range fv {
			ys = append(ys, 1)
		}
		for range fb {
			ys = append(ys, 0)
		}
	}
	return xs, ys, nil
}

// Options configure Run.
type Options struct {
	M         int     // transformed images per test (default 10 white-box, 100 black-box)
	Alpha     float64 // significance level (default 0.01)
	Test      string  // "paired" (default) or "welch"
	Resamples int     // repeat the test on this many resamples (default 1)
	// MinDelta is the margin δ of the test: H0: mu_S - mu_B <= δ against H1: mu_S - mu_B > δ
	// (0: the paper's H1: mu_S > mu_B). When the meta-classifier's probabilities saturate, a
	// test with no margin on values that barely vary calls a difference of 0.001 significant,
	// and such a difference says nothing about theft; with a margin an innocent suspect gets
	// a large p-value, not merely a verdict overruled.
	MinDelta float64
	Seed     uint64
}

// Result is a verification outcome.
type Result struct {
	Mode        string       `json:"mode"`
	M           int          `json:"m"`
	Samples     []int        `json:"samples"` // key indices of the first resample
	ProbSuspect []float64    `json:"prob_suspect"`
	ProbBenign  []float64    `json:"prob_benign"`
	Test        stats.Result `json:"test"`
	PValues     []float64    `json:"p_values,omitempty"` // one per resample when Resamples > 1
	PMedian     float64      `json:"p_median"`
	PHarmonic   float64      `json:"p_harmonic_mean"`
	P           float64      `json:"p_value"` // the decisive p-value: the test's, or the median over resamples
	DeltaMu     float64      `json:"delta_mu"`
	Alpha       float64      `json:"alpha"`
	MinDelta    float64      `json:"min_delta"`
	Stolen      bool         `json:"stolen"`
	// Folded counts, for white-box tests, the batch norms of the suspect and of the benign
	// model that were merged into their convolutions before reading gradients.
	Folded []int `json:"folded_batch_norms,omitempty"`
}

// Run tests suspect against benign on held-out key samples with meta-classifier c.
func Run(c *meta.Classifier, suspect, benign Model, pairs []watermark.Pair, o Options) (*Result, error) {
	mode := c.Info.Mode
	if o.M <= 0 {
		o.M = 10
		if mode == "black" {
			o.M = 100
		}
	}
	if o.Alpha <= 0 {
		o.Alpha = 0.01
	}
	if o.Resamples <= 0 {
		o.Resamples = 1
	}
	held := c.Info.HeldOutIdx
	for _, k := range held {
		if k < 0 || k >= len(pairs) {
			return nil, fmt.Errorf("the meta-classifier's held-out sample %d is not in the key (%d samples): wrong key?", k, len(pairs))
		}
	}
	if len(held) < 2 {
		return nil, errors.New("the meta-classifier holds out fewer than 2 key samples")
	}
	m := min(o.M, len(held))
	rng := rand.New(rand.NewPCG(o.Seed, 0x76657269))
	res := &Result{Mode: mode, M: m, Alpha: o.Alpha}
	if mode == "white" {
		for _, x := range []struct {
			name string
			m    Model
		}{{"suspect", suspect}, {"benign model", benign}} {
			s, err := Compatible(c, x.m, pairs)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", x.name, err)
			}
			res.Folded = append(res.Folded, s.Folded)
		}
	}
	// Features per held-out sample are computed once and reused across resamples.
	cacheS, cacheB := map[int]float64{}, map[int]float64{}
	probs := func(mod Model, idx []int, cache map[int]float64) ([]float64, error) {
		var need []int
		for _, k := range idx {
			if _, ok := cache[k]; !ok {
				need = append(need, k)
			}
		}
		if len(need) > 0 {
			ps := make([]watermark.Pair, len(need))
			for i, k := range need {
				ps[i] = pairs[k]
			}
			f, err := Features(mode, c.Info.Layout, mod, ps)
			if err != nil {
				return nil, err
			}
			p, err := c.Prob(f)
			if err != nil {
				return nil, err
			}
			for i, k := range need {
				cache[k] = p[i]
			}
		}
		out := make([]float64, len(idx))
		for i, k := range idx {
			out[i] = cache[k]
		}
		return out, nil
	}
	for r := range o.Resamples {
		perm := rng.Perm(len(held))[:m]
		idx := make([]int, m)
		for i, j := range perm {
			idx[i] = held[j]
		}
		ps, err := probs(suspect, idx, cacheS)
		if err != nil {
			return nil, fmt.Errorf("suspect: %w", err)
		}
		pb, err := probs(benign, idx, cacheB)
		if err != nil {
			return nil, fmt.Errorf("benign model: %w", err)
		}
		// The margin: test the suspect against the reference shifted up by δ.
		shifted := make([]float64, len(pb))
		for i, v := range pb {
			shifted[i] = v + o.MinDelta
		}
		var t stats.Result
		if o.Test == "welch" {
			t, err = stats.WelchT(ps, shifted, stats.Greater)
		} else {
			t, err = stats.PairedT(ps, shifted, stats.Greater)
		}
		if err != nil {
			return nil, err
		}
		t.DeltaMu += o.MinDelta // report mean(S) - mean(B) itself
		if r == 0 {
			res.Samples, res.ProbSuspect, res.ProbBenign, res.Test = idx, ps, pb, t
		}
		res.PValues = append(res.PValues, t.P)
	}
	res.PMedian = stats.MedianP(res.PValues)
	res.PHarmonic = stats.HarmonicMeanP(res.PValues)
	res.P = res.Test.P
	if o.Resamples > 1 {
		res.P = res.PMedian
	} else {
		res.PValues = nil
	}
	res.DeltaMu = res.Test.DeltaMu
	res.MinDelta = o.MinDelta
	res.Stolen = res.P < o.Alpha && res.DeltaMu >= o.MinDelta
	return res, nil
}

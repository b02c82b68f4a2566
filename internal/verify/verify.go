// Package verify is MOVE's ownership verification: it trains the meta-classifier on the
// victim's and the benign model's features over part of the watermark key's transformed
// images, and tests a suspect against the benign model on the other part with a one-tailed
// paired t-test (H1: the suspect looks more like the victim than the benign model does).
package verify

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"move/internal/classifier"
	"move/internal/data"
	"move/internal/features"
	"move/internal/meta"
	"move/internal/stats"
	"move/internal/tensor"
	"move/internal/watermark"
)

// Features computes the mode's features of m on the given key pairs (their owner-styled
// images).
func Features(mode, layout string, m classifier.Model, pairs []watermark.Pair) ([][]float32, error) {
	o, err := observe(mode, layout, m, pairs, 1)
	if err != nil {
		return nil, err
	}
	return o.feats[0], nil
}

// observation is what one model shows on some key pairs: its features on each view of them
// (view 0: the owner's style; view k: control style k) and its top-1 class on each original.
type observation struct {
	feats   [][][]float32 // [view][pair]
	pred    []int
	classes int
}

// augmented is pair p with its styled and control images in augmented view a (features.View);
// the original stays as it is (it only says whether the model works).
func augmented(p watermark.Pair, a int) watermark.Pair {
	if a == 0 {
		return p
	}
	q := p
	q.Styled = features.View(p.Styled, p.H, p.W, a)
	q.Controls = make([][]uint8, len(p.Controls))
	for i, c := range p.Controls {
		q.Controls[i] = features.View(c, p.H, p.W, a)
	}
	return q
}

// view returns the image of pair p seen in view v (0: owner-styled, k: control k).
func view(p watermark.Pair, v int) []uint8 {
	if v == 0 {
		return p.Styled
	}
	return p.Controls[v-1]
}

// observe computes m's features on views 0..views-1 of pairs.
func observe(mode, layout string, m classifier.Model, pairs []watermark.Pair, views int) (*observation, error) {
	if len(pairs) == 0 {
		return nil, errors.New("no key images")
	}
	for i, p := range pairs {
		if len(p.Controls) < views-1 {
			return nil, fmt.Errorf("key sample %d has no image in control style %d", i, len(p.Controls)+1)
		}
	}
	h, w := pairs[0].H, pairs[0].W
	o := &observation{feats: make([][][]float32, views)}
	switch mode {
	case features.White:
		if m.Local == nil {
			return nil, errors.New("white-box features need the model's weights (a model file), not an endpoint")
		}
		for v := range views {
			imgs, labels := make([][]uint8, len(pairs)), make([]int, len(pairs))
			for i, p := range pairs {
				imgs[i], labels[i] = view(p, v), p.Label
			}
			x, y := whiteBatch(m, imgs, labels, h, w)
			var f [][]float32
			var err error
			if features.IsInput(layout) {
				f, err = features.InputGradients(m.Local, x, y, layout)
			} else {
				f, err = features.WhiteBox(m.Local, x, y, layout)
			}
			if err != nil {
				return nil, err
			}
			o.feats[v] = f
		}
		orig := make([][]uint8, len(pairs))
		for i, p := range pairs {
			orig[i] = p.Orig
		}
		probs, err := m.Probs(orig, h, w)
		if err != nil {
			return nil, err
		}
		o.pred, o.classes = argmaxes(probs), len(probs[0])
	case features.Black:
		orig := make([][]uint8, len(pairs))
		vs := make([][][]uint8, views)
		for i, p := range pairs {
			orig[i] = p.Orig
			for v := range views {
				vs[v] = append(vs[v], view(p, v))
			}
		}
		f, base, err := features.BlackBoxViews(m, orig, vs, h, w)
		if err != nil {
			return nil, err
		}
		o.feats, o.pred, o.classes = f, argmaxes(base), len(base[0])
	default:
		return nil, fmt.Errorf("unknown mode %q (white or black)", mode)
	}
	return o, nil
}

// whiteBatch is the batch a white-box feature reads: the images (h x w, RGB) resized to the
// model's input size and normalised as the model was trained, with their labels.
func whiteBatch(m classifier.Model, imgs [][]uint8, labels []int, h, w int) (*tensor.Tensor, []int) {
	s := &data.Set{H: h, W: w}
	for i, img := range imgs {
		if m.Size > 0 && (h != m.Size || w != m.Size) {
			img = data.Resize(img, h, w, m.Size, m.Size)
		}
		s.Pixels = append(s.Pixels, img...)
		s.Labels = append(s.Labels, labels[i])
	}
	if m.Size > 0 {
		s.H, s.W = m.Size, m.Size
	}
	idx := make([]int, s.Len())
	for i := range idx {
		idx[i] = i
	}
	return data.Batch(s, idx, m.Norm, data.Augment{}, nil)
}

func argmaxes(probs [][]float32) []int {
	out := make([]int, len(probs))
	for i, p := range probs {
		out[i] = classifier.Top1(p)
	}
	return out
}

// Structure describes the white-box vector of a local model on the key's images.
func Structure(m classifier.Model, pairs []watermark.Pair) (*features.Structure, error) {
	if m.Local == nil {
		return nil, errors.New("white-box features need the model's weights (a model file), not an endpoint")
	}
	size := m.Size
	if size <= 0 && len(pairs) > 0 {
		size = pairs[0].H
	}
	return features.Describe(m.Local, size)
}

// ErrArchMismatch: a white-box meta-classifier cannot read a model whose weights do not line
// up with the victim's; white-box features only compare within one architecture (black-box
// features need no matching architecture).
var ErrArchMismatch = errors.New("its weights do not line up with the victim's; white-box features only compare within one architecture")

// Compatible checks that white-box classifier c can read m's features: the same feature
// definition and a model whose weights line up with the victim's. It returns m's structure.
func Compatible(c *meta.Classifier, m classifier.Model, pairs []watermark.Pair) (*features.Structure, error) {
	if features.IsInput(c.Info.Layout) {
		// Input gradients need the weights but no alignment: any architecture that takes the
		// key's images will do.
		if !m.IsLocal() {
			return nil, errors.New("white-box features need the model's weights (a model file), not an endpoint")
		}
		if c.Info.Form != features.InputGradForm {
			return nil, fmt.Errorf("the meta-classifier was trained on input-gradient features of form %q; this move computes form %q: train it again with move meta", c.Info.Form, features.InputGradForm)
		}
		return &features.Structure{}, nil
	}
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
		return nil, fmt.Errorf("it is %s, the classifier was trained on %s gradients: %w", what, c.Info.Arch, ErrArchMismatch)
	}
	return s, nil
}

// Contrast names the specificity check that a meta-classifier trained on a key with control
// styles records (meta.Info.Contrast). Such a classifier learns the victim's answer to the
// owner's style against four kinds of negatives: the benign models on the owner's style and
// the victim and the benign models on every control style; a suspect's score on an image is
// then C(owner style) - mean over controls of C(control style), so a model that answers every
// style alike scores zero, whatever its answers are.
const Contrast = "control-styles-v1"

// MetaOptions configure TrainMeta.
type MetaOptions struct {
	Mode, Layout string
	HeldOut      float64 // fraction of key samples kept for verification (default 0.5)
	MaxTrain     int     // at most this many key samples train the classifier (default 500)
	// NoControls trains without the key's control styles (the paper's classifier: victim
	// against benign on the owner's style only) even when the key has them.
	NoControls bool
	// Positives and Negatives are further models labelled like the victim (1) and like the
	// benign models (0): the owner's own students of the victim and of a benign model, so that
	// "a student" (its own initialisation, a function learned from answers) is on both sides and
	// only what a student inherits from the victim separates them. Their features on the
	// control styles are negatives too. They must read the same features as the victim.
	Positives, Negatives []classifier.Model
	// Views is, for an input-gradient family, how many augmented views of each key image
	// (features.View) verification averages the classifier's probability over (recorded in
	// the classifier; at most features.MaxViews).
	Views int
	Seed  uint64
	Fit   meta.Options
}

// usable returns the key indices a classifier can use and the number of views: all samples
// and 1 view without controls; with controls, the samples every control covers and 1 + the
// number of controls.
func usable(pairs []watermark.Pair, controls bool) ([]int, int) {
	k := 0
	if controls {
		for _, p := range pairs {
			k = max(k, len(p.Controls))
		}
	}
	var idx []int
	for i, p := range pairs {
		if len(p.Controls) >= k {
			idx = append(idx, i)
		}
	}
	return idx, k + 1
}

// TrainMeta splits the key's pairs into training and held-out samples, computes features of
// the victim (label 1) and of every benign model (label 0) on the training ones and fits the
// meta-classifier. With several benign models the victim's features are repeated once per
// benign model so that both classes weigh the same. When the key has control styles (and
// NoControls is not set), only samples with control versions are used, and the victim's and
// the benign models' features on the control styles are negatives too (see Contrast). The
// split and the held-out accuracy are recorded in the classifier's Info.
func TrainMeta(victim classifier.Model, benign []classifier.Model, pairs []watermark.Pair, o MetaOptions) (*meta.Classifier, error) {
	if o.Layout == features.GradSimilarity {
		return nil, fmt.Errorf("the %s family trains no classifier: its test is SimilarityTest", o.Layout)
	}
	if len(benign) == 0 {
		return nil, errors.New("no benign model")
	}
	if o.HeldOut <= 0 || o.HeldOut >= 1 {
		o.HeldOut = 0.5
	}
	if o.MaxTrain <= 0 {
		o.MaxTrain = 500
	}
	if o.Mode == features.Black {
		o.Layout = "prob-diff-5aug"
	}
	eligible, views := usable(pairs, !o.NoControls)
	n := len(eligible)
	nh := int(float64(n) * o.HeldOut)
	if nh < 2 || n-nh < 2 {
		return nil, fmt.Errorf("the key has %d usable transformed samples: too few to train and verify", n)
	}
	perm := rand.New(rand.NewPCG(o.Seed, 0x73706c)).Perm(n)
	for i, j := range perm {
		perm[i] = eligible[j]
	}
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
	xs, ys, err := labelled(o, victim, benign, sub(trn), views)
	if err != nil {
		return nil, err
	}
	if o.Views > 1 && !(o.Mode == features.White && features.IsInput(o.Layout)) {
		return nil, fmt.Errorf("views average an input-gradient family's scores; the %s-box %s features have none", o.Mode, o.Layout)
	}
	if o.Views > features.MaxViews {
		return nil, fmt.Errorf("%d views: at most %d", o.Views, features.MaxViews)
	}
	info := meta.Info{Mode: o.Mode, Layout: o.Layout, TrainIdx: trn, HeldOutIdx: held, Views: o.Views}
	if views > 1 {
		info.Contrast, info.Controls = Contrast, views-1
	}
	if victim.Local != nil {
		info.Arch, info.Classes = victim.Local.Arch(), victim.Local.Classes()
	}
	if o.Mode == features.White && features.IsInput(o.Layout) {
		info.Form = features.InputGradForm
	} else if o.Mode == features.White {
		sv, err := Structure(victim, pairs)
		if err != nil {
			return nil, fmt.Errorf("victim: %w", err)
		}
		others := append(append(append([]classifier.Model(nil), benign...), o.Positives...), o.Negatives...)
		for i, b := range others {
			name := fmt.Sprintf("benign model %d", i+1)
			if j := i - len(benign); j >= len(o.Positives) {
				name = fmt.Sprintf("negative model %d", j-len(o.Positives)+1)
			} else if j >= 0 {
				name = fmt.Sprintf("positive model %d", j+1)
			}
			sb, err := Structure(b, pairs)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			if sb.Signature != sv.Signature {
				return nil, fmt.Errorf("%s's weights do not line up with the victim's (a different architecture?): white-box features compare within one architecture", name)
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
	hx, hy, err := labelled(o, victim, benign, sub(hv), views)
	if err != nil {
		return nil, err
	}
	c.Info.HeldOutAcc = c.Accuracy(hx, hy)
	return c, nil
}

// labelled computes the positives' features on the owner's style (label 1: the victim and
// MetaOptions.Positives) and every negative (label 0): each benign model (and each of
// MetaOptions.Negatives) on the owner's style and, with views > 1, every model on every
// control style. Each negative group is paired with one positive group (in turn) so that both
// classes weigh the same.
func labelled(o MetaOptions, victim classifier.Model, benign []classifier.Model, pairs []watermark.Pair, views int) ([][]float32, []int, error) {
	var pos, neg []*observation
	for i, m := range append([]classifier.Model{victim}, o.Positives...) {
		ob, err := observe(o.Mode, o.Layout, m, pairs, views)
		if err != nil {
			if i == 0 {
				return nil, nil, fmt.Errorf("victim features: %w", err)
			}
			return nil, nil, fmt.Errorf("positive model %d features: %w", i, err)
		}
		pos = append(pos, ob)
	}
	for i, b := range append(append([]classifier.Model(nil), benign...), o.Negatives...) {
		ob, err := observe(o.Mode, o.Layout, b, pairs, views)
		if err != nil {
			if i < len(benign) {
				return nil, nil, fmt.Errorf("benign model %d features: %w", i+1, err)
			}
			return nil, nil, fmt.Errorf("negative model %d features: %w", i-len(benign)+1, err)
		}
		neg = append(neg, ob)
	}
	var xs [][]float32
	var ys []int
	groups := 0
	add := func(group [][]float32) {
		fv := pos[groups%len(pos)].feats[0]
		groups++
		xs = append(append(xs, fv...), group...)
		for range fv {
			ys = append(ys, 1)
		}
		for range group {
			ys = append(ys, 0)
		}
	}
	for _, ob := range neg {
		add(ob.feats[0])
	}
	for v := 1; v < views; v++ {
		for _, ob := range append(append([]*observation(nil), pos...), neg...) {
			add(ob.feats[v])
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
	// GainM is how many held-out key samples the style-gain test reads (default 500, at most
	// all held-out ones with control versions); GainMargin its margin (default 0.01).
	GainM      int
	GainMargin float64
	// Rebuttals are styles the accused shows they embedded in their own model before the
	// owner registered theirs (their own MOVE watermark, vouched for by a registration
	// record): the style-gain test adds them to the control styles, so a response that the
	// accused's own watermark explains is not evidence. A style near the owner's carries the
	// same response — on CIFAR-10 a model watermarked with blue-and-yellow strokes answered
	// starry-night images as well as a copy of the victim — and no statistic on the suspect
	// tells the two apart; only the earlier record does.
	Rebuttals []Rebuttal
	// RefShortfall is how far the reference's accuracy on the key's originals may fall below
	// the suspect's before the test is "inconclusive" (default DefaultRefShortfall; 1 never).
	// Every trained model gains from restyling on some images, a weak one less: against a
	// reference much weaker than the suspect, any competent innocent gains more than it on
	// images chosen for their gain. On CIFAR-10 quick a claimant who tested with a one-epoch
	// reference (42% accurate) convicted an innocent public model at p = 4e-5 (README: false
	// claims). The reference is the owner's to choose: one as good as the suspect is a fair null.
	RefShortfall float64
	Seed         uint64
}

// DefaultRefShortfall is Options.RefShortfall's default: 0.15 of accuracy on the key's
// originals.
const DefaultRefShortfall = 0.15

// Rebuttal is a style the accused embedded themselves, and how to restyle an image with it.
type Rebuttal struct {
	Name  string
	Apply func(imgs [][]uint8, h, w int) ([][]uint8, error)
}

// Memoised returns r with an Apply that remembers each image's restyled version: a rebuttal
// read for several suspects restyles every key image once. Not for concurrent use.
func (r Rebuttal) Memoised() Rebuttal {
	apply, memo := r.Apply, map[string][]uint8{}
	r.Apply = func(imgs [][]uint8, h, w int) ([][]uint8, error) {
		var need [][]uint8
		for _, im := range imgs {
			if _, ok := memo[string(im)]; !ok {
				need = append(need, im)
			}
		}
		if len(need) > 0 {
			got, err := apply(need, h, w)
			if err != nil {
				return nil, err
			}
			if len(got) != len(need) {
				return nil, fmt.Errorf("restyled %d of %d images", len(got), len(need))
			}
			for i, o := range got {
				memo[string(need[i])] = o
			}
		}
		out := make([][]uint8, len(imgs))
		for i, im := range imgs {
			out[i] = memo[string(im)]
		}
		return out, nil
	}
	return r
}

// Verdicts of a test.
const (
	Stolen       = "stolen"
	NotStolen    = "not stolen"
	Inconclusive = "inconclusive"
)

// Result is a verification outcome.
type Result struct {
	Mode    string `json:"mode"`
	M       int    `json:"m"`
	Samples []int  `json:"samples"` // key indices of the first resample
	// ProbSuspect and ProbBenign are the meta-classifier's victim probabilities on the owner's
	// style; with a contrast, ControlSuspect and ControlBenign are their means over the control
	// styles, and the test compares the scores ProbSuspect - ControlSuspect and
	// ProbBenign - ControlBenign.
	ProbSuspect    []float64    `json:"prob_suspect"`
	ProbBenign     []float64    `json:"prob_benign"`
	ControlSuspect []float64    `json:"control_suspect,omitempty"`
	ControlBenign  []float64    `json:"control_benign,omitempty"`
	Contrast       string       `json:"contrast,omitempty"`
	Test           stats.Result `json:"test"` // the suspect against the reference
	// Specificity is, with a contrast, the one-sample test of the suspect's own scores against
	// the margin (its answer to the owner's style beyond its answer to the control styles);
	// P is then the larger of the two tests' p-values.
	Specificity stats.Result `json:"specificity,omitempty"`
	// Unspecific is, with a contrast, the same paired test on the owner's style alone (the
	// paper's score, with the margin): for comparison only, never the verdict. Where it is
	// small and the verdict's p-value is not, the suspect shares the victim's response to
	// restyling in general — which innocents can share too — but not to the owner's style.
	Unspecific *stats.Result `json:"unspecific,omitempty"`
	// Gain is, for a black-box test with control styles, the style-gain test that decides the
	// verdict: per key image, the suspect's probability of the true class on the owner-styled
	// image minus its mean over the control-styled versions, paired against the reference's
	// (H1: the suspect's gain exceeds the reference's by more than GainMargin). A model that
	// learned the owner's style — the victim, and on CIFAR-10 its copies and its students —
	// recognises images in that style better than in styles nobody trained on, and more so
	// than an innocent model; a constant or uniformly robust model gains nothing. Test holds
	// the meta-classifier's test, reported beside it.
	Gain *stats.Result `json:"gain,omitempty"`
	// Rebuttals names the accused's styles the gain test counted as controls, and
	// GainUnrebutted is the same test without them (reported, never the verdict).
	Rebuttals      []string      `json:"rebuttals,omitempty"`
	GainUnrebutted *stats.Result `json:"gain_unrebutted,omitempty"`
	GainM          int           `json:"gain_m,omitempty"`
	GainMargin     float64       `json:"gain_margin,omitempty"`
	PValues        []float64     `json:"p_values,omitempty"` // one per resample when Resamples > 1
	PMedian        float64       `json:"p_median"`
	PHarmonic      float64       `json:"p_harmonic_mean"`
	P              float64       `json:"p_value"` // the decisive p-value: the test's, or the median over resamples
	DeltaMu        float64       `json:"delta_mu"`
	Alpha          float64       `json:"alpha"`
	MinDelta       float64       `json:"min_delta"`
	// KeyAccuracy is the suspect's top-1 accuracy on the originals of the key images it was
	// tested on (all held-out ones for a local model), KeyAccuracyN how many, and KeyAccuracyP
	// the one-sided binomial p-value of that accuracy against guessing (1/classes). A suspect
	// that is not a working classifier on the owner's images (KeyAccuracyP >= Alpha) gets the
	// verdict "inconclusive": nothing it answers is evidence.
	KeyAccuracy  float64 `json:"key_accuracy"`
	KeyAccuracyN int     `json:"key_accuracy_n"`
	KeyAccuracyP float64 `json:"key_accuracy_p"`
	// RefKeyAccuracy is the reference's accuracy on the same originals. A reference more
	// than RefShortfall below the suspect (Options.RefShortfall) makes the verdict
	// "inconclusive": it is no fair null for a suspect that much better.
	RefKeyAccuracy float64 `json:"reference_key_accuracy"`
	RefShortfall   float64 `json:"reference_shortfall_allowed"`
	Verdict        string  `json:"verdict"` // Stolen, NotStolen or Inconclusive
	// Why is, for an inconclusive verdict, the reason in words.
	Why    string `json:"why,omitempty"`
	Stolen bool   `json:"stolen"`
	// Folded counts, for white-box tests, the batch norms of the suspect and of the benign
	// model that were merged into their convolutions before reading gradients.
	Folded []int `json:"folded_batch_norms,omitempty"`
}

// scored is what a test reads of one model on one key sample.
type scored struct {
	owner, control float64 // the classifier's victim probability on the owner's style; mean over controls
	pred           int     // the model's top-1 class on the original
	classes        int
}

func (s scored) score() float64 { return s.owner - s.control }

// Validate reports the first option outside its range (zero values mean the defaults).
func (o Options) Validate() error {
	switch {
	case o.M < 0:
		return fmt.Errorf("m must not be negative, got %d", o.M)
	case math.IsNaN(o.Alpha) || o.Alpha < 0 || o.Alpha >= 1:
		return fmt.Errorf("alpha must be in (0, 1), got %g", o.Alpha)
	case o.Test != "" && o.Test != "paired" && o.Test != "welch":
		return fmt.Errorf("the test must be paired or welch, got %q", o.Test)
	case o.Resamples < 0:
		return fmt.Errorf("resamples must not be negative, got %d", o.Resamples)
	case math.IsNaN(o.MinDelta) || o.MinDelta < 0 || o.MinDelta >= 1:
		// A negative margin tests H1: mu_S - mu_B > -|δ|, which any suspect as good as the
		// reference satisfies: the reference itself would be "stolen".
		return fmt.Errorf("the margin (min-delta) must be in [0, 1), got %g", o.MinDelta)
	case o.GainM < 0:
		return fmt.Errorf("gain samples must not be negative, got %d", o.GainM)
	case math.IsNaN(o.GainMargin) || o.GainMargin < 0 || o.GainMargin >= 1:
		return fmt.Errorf("the gain margin must be in [0, 1), got %g", o.GainMargin)
	case math.IsNaN(o.RefShortfall) || o.RefShortfall < 0 || o.RefShortfall > 1:
		return fmt.Errorf("the reference's allowed shortfall must be in [0, 1] (0: the default %g; 1: never inconclusive for it), got %g", DefaultRefShortfall, o.RefShortfall)
	}
	return nil
}

// Run tests suspect against benign on held-out key samples with meta-classifier c.
func Run(c *meta.Classifier, suspect, benign classifier.Model, pairs []watermark.Pair, o Options) (*Result, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if !c.Trained() {
		return nil, fmt.Errorf("the %s meta file holds no classifier: its test is SimilarityTest", c.Info.Layout)
	}
	mode := c.Info.Mode
	if o.M <= 0 {
		o.M = 10
		if mode == features.Black {
			o.M = 100
		}
	}
	if o.Alpha <= 0 {
		o.Alpha = 0.01
	}
	if o.Resamples <= 0 {
		o.Resamples = 1
	}
	views := 1
	if c.Info.Contrast != "" {
		if c.Info.Contrast != Contrast {
			return nil, fmt.Errorf("the meta-classifier was trained for contrast %q; this move knows %q: train it again with move meta", c.Info.Contrast, Contrast)
		}
		views = 1 + c.Info.Controls
	}
	if len(o.Rebuttals) > 0 && (mode != features.Black || views == 1) {
		return nil, errors.New("rebuttal styles count in the black-box style-gain test, which needs a black-box meta-classifier trained on a key with control styles")
	}
	held := c.Info.HeldOutIdx
	for _, k := range held {
		if k < 0 || k >= len(pairs) {
			return nil, fmt.Errorf("the meta-classifier's held-out sample %d is not in the key (%d samples): wrong key?", k, len(pairs))
		}
		if len(pairs[k].Controls) < views-1 {
			return nil, fmt.Errorf("the meta-classifier contrasts %d control styles, but key sample %d has %d: wrong key?", views-1, k, len(pairs[k].Controls))
		}
	}
	if len(held) < 2 {
		return nil, errors.New("the meta-classifier holds out fewer than 2 key samples")
	}
	m := min(o.M, len(held))
	rng := rand.New(rand.NewPCG(o.Seed, 0x76657269))
	res := &Result{Mode: mode, M: m, Alpha: o.Alpha, Contrast: c.Info.Contrast}
	if mode == features.White {
		for _, x := range []struct {
			name string
			m    classifier.Model
		}{{"suspect", suspect}, {"benign model", benign}} {
			s, err := Compatible(c, x.m, pairs)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", x.name, err)
			}
			res.Folded = append(res.Folded, s.Folded)
		}
	}
	// Features per held-out sample are computed once and reused across resamples.
	cacheS, cacheB := map[int]scored{}, map[int]scored{}
	look := func(mod classifier.Model, idx []int, cache map[int]scored) ([]scored, error) {
		var need []int
		for _, k := range idx {
			if _, ok := cache[k]; !ok {
				need = append(need, k)
			}
		}
		if len(need) > 0 {
			// The classifier's probability on each view (owner style, controls), averaged
			// over the augmented views of the image when the classifier asks for them.
			nv := max(1, c.Info.Views)
			pv := make([][]float64, views)
			for v := range views {
				pv[v] = make([]float64, len(need))
			}
			var ob *observation
			for a := range nv {
				ps := make([]watermark.Pair, len(need))
				for i, k := range need {
					ps[i] = augmented(pairs[k], a)
				}
				o, err := observe(mode, c.Info.Layout, mod, ps, views)
				if err != nil {
					return nil, err
				}
				if a == 0 {
					ob = o
				}
				for v := range views {
					pr, err := c.Prob(o.feats[v])
					if err != nil {
						return nil, err
					}
					for i, x := range pr {
						pv[v][i] += x / float64(nv)
					}
				}
			}
			for i, k := range need {
				sc := scored{owner: pv[0][i], pred: ob.pred[i], classes: ob.classes}
				for v := 1; v < views; v++ {
					sc.control += pv[v][i] / float64(views-1)
				}
				cache[k] = sc
			}
		}
		out := make([]scored, len(idx))
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
		ss, err := look(suspect, idx, cacheS)
		if err != nil {
			return nil, fmt.Errorf("suspect: %w", err)
		}
		sb, err := look(benign, idx, cacheB)
		if err != nil {
			return nil, fmt.Errorf("benign model: %w", err)
		}
		ps, pb := make([]float64, m), make([]float64, m)
		for i := range m {
			ps[i], pb[i] = ss[i].score(), sb[i].score()
		}
		t, err := aboveMargin(ps, pb, o.MinDelta, o.Test == "welch")
		if err != nil {
			return nil, err
		}
		p := t.P
		var self stats.Result
		if views > 1 {
			// The suspect's own specificity: its score (owner style minus control styles)
			// above the margin. A stolen model must pass both tests; rejecting only when both
			// reject (an intersection-union test, Berger 1982) keeps the level alpha, and its
			// p-value is the larger of the two.
			if self, err = aboveMargin(ps, make([]float64, m), o.MinDelta, false); err != nil {
				return nil, err
			}
			p = max(p, self.P)
		}
		if r == 0 && views > 1 {
			own, ref := make([]float64, m), make([]float64, m)
			for i := range m {
				own[i], ref[i] = ss[i].owner, sb[i].owner
			}
			u, err := aboveMargin(own, ref, o.MinDelta, false)
			if err != nil {
				return nil, err
			}
			res.Unspecific = &u
		}
		if r == 0 {
			res.Samples, res.Test, res.Specificity, res.P = idx, t, self, p
			for i := range m {
				res.ProbSuspect = append(res.ProbSuspect, ss[i].owner)
				res.ProbBenign = append(res.ProbBenign, sb[i].owner)
				if views > 1 {
					res.ControlSuspect = append(res.ControlSuspect, ss[i].control)
					res.ControlBenign = append(res.ControlBenign, sb[i].control)
				}
			}
		}
		res.PValues = append(res.PValues, p)
	}
	// Is the suspect a working classifier on the owner's images? A local model is asked about
	// every held-out original (cheap, no queries); a remote one about those it was tested on.
	accIdx := held
	if suspect.IsLocal() {
		if err := res.keyAccuracyLocal(suspect, pairs, held); err != nil {
			return nil, err
		}
	} else {
		var pred []int
		for _, k := range res.Samples {
			pred = append(pred, cacheS[k].pred)
		}
		res.keyAccuracy(pred, res.Samples, pairs, cacheS[res.Samples[0]].classes)
		accIdx = res.Samples
	}
	if err := res.refAccuracy(benign, pairs, accIdx, o); err != nil {
		return nil, err
	}

	if mode == features.Black && views > 1 {
		if err := gainTest(res, suspect, benign, pairs, held, views, 1, o, false); err != nil {
			return nil, err
		}
	}
	res.PMedian = stats.MedianP(res.PValues)
	res.PHarmonic = stats.HarmonicMeanP(res.PValues)
	if o.Resamples > 1 {
		res.P = res.PMedian
	} else {
		res.PValues = nil
	}
	res.DeltaMu = res.Test.DeltaMu
	res.MinDelta = o.MinDelta
	specific := views == 1 || res.Specificity.DeltaMu >= o.MinDelta
	if res.Gain != nil {
		// Black-box with controls: the style-gain test decides; the meta-classifier's
		// contrast test is reported beside it.
		res.P, res.DeltaMu, res.PValues = res.Gain.P, res.Gain.DeltaMu, nil
		res.PMedian, res.PHarmonic = res.Gain.P, res.Gain.P
		res.MinDelta, specific = res.GainMargin, true
	}
	res.decide(o.Alpha, specific)
	return res, nil
}

// aboveMargin tests H1: mean(s) − mean(b) > margin, paired (or Welch's when welch), against b
// shifted up by the margin; DeltaMu reports mean(s) − mean(b) itself.
func aboveMargin(s, b []float64, margin float64, welch bool) (stats.Result, error) {
	shifted := make([]float64, len(b))
	for i, v := range b {
		shifted[i] = v + margin
	}
	test := stats.PairedT
	if welch {
		test = stats.WelchT
	}
	t, err := test(s, shifted, stats.Greater)
	t.DeltaMu += margin
	return t, err
}

// keyAccuracyLocal asks a local suspect about the original of every key sample of idx (cheap,
// no queries) and records its accuracy (keyAccuracy).
func (res *Result) keyAccuracyLocal(suspect classifier.Model, pairs []watermark.Pair, idx []int) error {
	probs, err := suspect.Probs(origs(pairs, idx), pairs[idx[0]].H, pairs[idx[0]].W)
	if err != nil {
		return fmt.Errorf("suspect: %w", err)
	}
	res.keyAccuracy(argmaxes(probs), idx, pairs, len(probs[0]))
	return nil
}

// refAccuracy records the reference's accuracy on the originals of key samples idx (those
// the suspect's KeyAccuracy counts) and the shortfall allowed (Options.RefShortfall).
func (res *Result) refAccuracy(ref classifier.Model, pairs []watermark.Pair, idx []int, o Options) error {
	acc, err := accuracyOn(ref, pairs, idx)
	if err != nil {
		return fmt.Errorf("benign model: %w", err)
	}
	res.RefKeyAccuracy = acc
	res.RefShortfall = o.RefShortfall
	if res.RefShortfall == 0 {
		res.RefShortfall = DefaultRefShortfall
	}
	return nil
}

// accuracyOn is m's top-1 accuracy on the originals of key samples idx.
func accuracyOn(m classifier.Model, pairs []watermark.Pair, idx []int) (float64, error) {
	probs, err := m.Probs(origs(pairs, idx), pairs[idx[0]].H, pairs[idx[0]].W)
	if err != nil {
		return 0, err
	}
	return float64(correctOn(argmaxes(probs), idx, pairs)) / float64(len(idx)), nil
}

// correctOn counts the answers pred that are the true classes of key samples idx.
func correctOn(pred, idx []int, pairs []watermark.Pair) int {
	correct := 0
	for i, k := range idx {
		if pred[i] == pairs[k].Label {
			correct++
		}
	}
	return correct
}

// keyAccuracy records the suspect's top-1 accuracy (its answers pred) on the originals of key
// samples idx and the one-sided binomial p-value of that accuracy against guessing among
// classes.
func (res *Result) keyAccuracy(pred, idx []int, pairs []watermark.Pair, classes int) {
	correct := correctOn(pred, idx, pairs)
	res.KeyAccuracyN = len(idx)
	res.KeyAccuracy = float64(correct) / float64(len(idx))
	res.KeyAccuracyP = stats.BinomialUpper(correct, len(idx), 1/float64(max(2, classes)))
}

// decide sets the verdict: inconclusive for a suspect that is no working classifier on the
// owner's images or one that a reference too weak is no null for (Result.RefKeyAccuracy),
// stolen when the decisive p-value is below alpha with delta-mu above the
// margin (and, for a contrast, the suspect's own score specific), not stolen otherwise.
func (res *Result) decide(alpha float64, specific bool) {
	switch {
	case res.KeyAccuracyP >= alpha:
		res.Verdict = Inconclusive
		res.Why = fmt.Sprintf("the suspect is not a working classifier on the owner's images (%.1f%% of %d originals; against guessing p %.3g): its answers are no evidence either way",
			100*res.KeyAccuracy, res.KeyAccuracyN, res.KeyAccuracyP)
	case res.RefShortfall > 0 && res.KeyAccuracy-res.RefKeyAccuracy > res.RefShortfall:
		res.Verdict = Inconclusive
		res.Why = fmt.Sprintf("the reference answers the key's originals %.1f%% right, the suspect %.1f%%: more than %.0f points worse, it is no fair null (any good model gains more from restyling than a weak one); test again against a reference as good as the suspect",
			100*res.RefKeyAccuracy, 100*res.KeyAccuracy, 100*res.RefShortfall)
	case res.P < alpha && res.DeltaMu >= res.MinDelta && specific:
		res.Verdict, res.Stolen = Stolen, true
	default:
		res.Verdict = NotStolen
	}
}

// gainTest runs the style-gain test (Result.Gain) on up to o.GainM held-out samples with
// control versions, drawn at random or, when ranked, the first of held: one query batch per
// model of each original, its owner-styled version and its control-styled versions.
func gainTest(res *Result, suspect, benign classifier.Model, pairs []watermark.Pair, held []int, views, augs int, o Options, ranked bool) error {
	n := o.GainM
	if n <= 0 {
		n = 500
	}
	margin := o.GainMargin
	if margin == 0 {
		margin = 0.01
	}
	idx := append([]int(nil), held...)
	if !ranked {
		rand.New(rand.NewPCG(o.Seed, 0x6761696e)).Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
	}
	idx = idx[:min(n, len(idx))]
	h, w := pairs[idx[0]].H, pairs[idx[0]].W
	// The accused's styles restyle the same originals once; both models read them.
	var rebut [][][]uint8 // [style][sample]
	if len(o.Rebuttals) > 0 {
		orig := make([][]uint8, len(idx))
		for i, k := range idx {
			orig[i] = pairs[k].Orig
		}
		for _, rb := range o.Rebuttals {
			out, err := rb.Apply(orig, h, w)
			if err != nil {
				return fmt.Errorf("rebuttal style %s: %w", rb.Name, err)
			}
			if len(out) != len(orig) {
				return fmt.Errorf("rebuttal style %s: restyled %d of %d images", rb.Name, len(out), len(orig))
			}
			rebut = append(rebut, out)
			res.Rebuttals = append(res.Rebuttals, rb.Name)
		}
	}
	gs, rs, err := styleGains(suspect, pairs, idx, views, augs, rebut)
	if err != nil {
		return fmt.Errorf("suspect: %w", err)
	}
	gb, rb, err := styleGains(benign, pairs, idx, views, augs, rebut)
	if err != nil {
		return fmt.Errorf("benign model: %w", err)
	}
	test := func(s, b []float64) (stats.Result, error) { return aboveMargin(s, b, margin, false) }
	t, err := test(gs, gb)
	if err != nil {
		return err
	}
	if len(rebut) > 0 {
		plain := t
		res.GainUnrebutted = &plain
		if t, err = test(rs, rb); err != nil {
			return err
		}
	}
	res.Gain, res.GainM, res.GainMargin = &t, len(idx), margin
	return nil
}

// styleGains returns, per key sample of idx, m's probability of the true class on the
// owner-styled image minus its mean over the key's views-1 control styles (plain) and over
// those and the restyled versions of rebut ([style][sample]; rebutted), each the mean over the
// first augs of the paper's augmentations (features.Augment; 1: the images as they are),
// from one query batch.
func styleGains(m classifier.Model, pairs []watermark.Pair, idx []int, views, augs int, rebut [][][]uint8) (plain, rebutted []float64, err error) {
	if len(idx) == 0 {
		return nil, nil, errors.New("no key samples")
	}
	if augs < 1 || augs > len(features.Augmentations) {
		return nil, nil, fmt.Errorf("%d augmentations: the style gain averages over 1 to %d", augs, len(features.Augmentations))
	}
	per := views + len(rebut)
	h, w := pairs[idx[0]].H, pairs[idx[0]].W
	seen := func(p []uint8, a int) []uint8 {
		if a == 0 {
			return p
		}
		return features.Augment(p, h, w, a)
	}
	var batch [][]uint8
	for i, k := range idx {
		if len(pairs[k].Controls) < views-1 {
			return nil, nil, fmt.Errorf("key sample %d has %d control styles, the test needs %d", k, len(pairs[k].Controls), views-1)
		}
		for a := range augs {
			for v := range views {
				batch = append(batch, seen(view(pairs[k], v), a))
			}
			for _, rs := range rebut {
				batch = append(batch, seen(rs[i], a))
			}
		}
	}
	probs, err := m.Probs(batch, h, w)
	if err != nil {
		return nil, nil, err
	}
	if len(probs) != len(batch) {
		return nil, nil, fmt.Errorf("asked for %d predictions, got %d", len(batch), len(probs))
	}
	plain, rebutted = make([]float64, len(idx)), make([]float64, len(idx))
	for i, k := range idx {
		y := pairs[k].Label
		for a := range augs {
			row := probs[(i*augs+a)*per : (i*augs+a+1)*per]
			if y >= len(row[0]) {
				return nil, nil, fmt.Errorf("key sample %d has label %d; the model answers %d classes", k, y, len(row[0]))
			}
			var ctl, all float64
			for v := 1; v < per; v++ {
				if v < views {
					ctl += float64(row[v][y])
				}
				all += float64(row[v][y])
			}
			plain[i] += (float64(row[0][y]) - ctl/float64(views-1)) / float64(augs)
			rebutted[i] += (float64(row[0][y]) - all/float64(per-1)) / float64(augs)
		}
	}
	return plain, rebutted, nil
}

// Package badnets is the model-watermarking baseline MOVE is compared with (Gu et al.,
// BadNets, as the MOVE paper's Table 3 uses it): the owner stamps a small patch trigger on a
// fraction of the training images and relabels them to a target class, so that the victim —
// and, the owner hopes, every model stolen from it — answers the target class on any image
// that carries the trigger. Unlike MOVE's external features, this plants a backdoor in the
// owner's own model and changes labels.
//
// Verification needs only the suspect's answers: on m test images of other classes, stamped
// with the trigger, the suspect's probability of the target class is compared with a benign
// reference's by the same one-tailed paired t-test (with a margin) that MOVE's verdict uses.
package badnets

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"

	"move/internal/classifier"
	"move/internal/data"
	"move/internal/stats"
)

// Trigger is the watermark: a black-and-white checkerboard of Size x Size pixels stamped
// Margin pixels from the bottom-right corner, and the class it forces.
type Trigger struct {
	Size   int `json:"size"`
	Margin int `json:"margin"`
	Target int `json:"target"`
}

// DefaultTrigger is a 3x3 patch at the bottom-right of a 32-pixel image (scaled with the
// image: a tenth of its side, at least 2 pixels), target class 0.
func DefaultTrigger(size int) Trigger {
	return Trigger{Size: max(2, (size+5)/10), Margin: max(1, size/32), Target: 0}
}

// Validate checks that the trigger fits an h x w image with k classes.
func (t Trigger) Validate(h, w, k int) error {
	if t.Size < 1 || t.Margin < 0 || t.Size+t.Margin > min(h, w) {
		return fmt.Errorf("a %d-pixel trigger %d pixels from the corner does not fit a %dx%d image", t.Size, t.Margin, h, w)
	}
	if t.Target < 0 || t.Target >= k {
		return fmt.Errorf("target class %d of %d", t.Target, k)
	}
	return nil
}

// Stamp returns a copy of an RGB image with the trigger on it.
func (t Trigger) Stamp(p []uint8, h, w int) []uint8 {
	out := append([]uint8(nil), p...)
	y0, x0 := h-t.Margin-t.Size, w-t.Margin-t.Size
	for dy := range t.Size {
		for dx := range t.Size {
			v := uint8(0)
			if (dx+dy)%2 == 0 {
				v = 255
			}
			o := ((y0+dy)*w + x0 + dx) * 3
			out[o], out[o+1], out[o+2] = v, v, v
		}
	}
	return out
}

// Mark returns the owner's watermarked training set: a copy of clean in which floor(rate x n)
// images of classes other than the target, drawn with seed, carry the trigger and the target
// label. It also returns their indices.
func Mark(clean *data.Set, t Trigger, rate float64, seed uint64) (*data.Set, []int, error) {
	if err := t.Validate(clean.H, clean.W, len(clean.Classes)); err != nil {
		return nil, nil, err
	}
	if !(rate > 0 && rate < 1) {
		return nil, nil, fmt.Errorf("watermarking rate %g: want (0, 1)", rate)
	}
	var others []int
	for i, l := range clean.Labels {
		if l != t.Target {
			others = append(others, i)
		}
	}
	n := int(rate * float64(clean.Len()))
	if n < 1 || n > len(others) {
		return nil, nil, fmt.Errorf("rate %g of %d images marks %d, and %d are outside the target class", rate, clean.Len(), n, len(others))
	}
	rng := rand.New(rand.NewPCG(seed, 0x6261646e)) // "badn"
	rng.Shuffle(len(others), func(i, j int) { others[i], others[j] = others[j], others[i] })
	marked := &data.Set{Classes: clean.Classes, H: clean.H, W: clean.W, Pixels: append([]uint8(nil), clean.Pixels...),
		Labels: append([]int(nil), clean.Labels...)}
	per := clean.H * clean.W * 3
	chosen := append([]int(nil), others[:n]...)
	for _, i := range chosen {
		copy(marked.Pixels[i*per:(i+1)*per], t.Stamp(clean.Image(i), clean.H, clean.W))
		marked.Labels[i] = t.Target
	}
	return marked, chosen, nil
}

// Options configure a verification.
type Options struct {
	M        int     // triggered test images (default 100)
	Alpha    float64 // significance level (default 0.01)
	MinDelta float64 // margin: H1 is mean(suspect - reference) > MinDelta
	Seed     uint64  // which test images
	// Sources are the classes the triggered test images are drawn from (default: every class
	// but the target; an entangled watermark is learnt on one source class).
	Sources []int
}

// Result is one verification.
type Result struct {
	M            int          `json:"m"`
	Test         stats.Result `json:"test"`
	P            float64      `json:"p_value"`
	DeltaMu      float64      `json:"delta_mu"` // mean target probability, suspect minus reference
	Stolen       bool         `json:"stolen"`
	ProbSuspect  []float64    `json:"prob_suspect"` // the suspect's target-class probability per image
	ProbBenign   []float64    `json:"prob_benign"`
	SuccessRate  float64      `json:"success_rate"` // the suspect's share of triggered images answered as the target
	BenignRate   float64      `json:"benign_rate"`
	TriggerClass int          `json:"target"`
	// Accuracy is the suspect's top-1 accuracy on the same images without the trigger, and
	// AccuracyP the binomial p-value of that accuracy against chance. As in MOVE's verdict
	// (package verify), a suspect that is not a working classifier (AccuracyP >= Alpha) gets
	// the verdict "inconclusive", whatever the trigger test says: a constant answer of the
	// target class is not a watermark.
	Accuracy  float64 `json:"accuracy"`
	AccuracyP float64 `json:"accuracy_p"`
	Verdict   string  `json:"verdict"` // stolen, not stolen, inconclusive
}

// Verify tests whether suspect carries the trigger: on opts.M test images of other classes
// (of opts.Sources when set),
// stamped, the suspect's target-class probability against the reference's; the verdict is
// "inconclusive" for a suspect that does not classify the same images without the trigger
// better than chance.
func Verify(suspect, ref classifier.Prober, test *data.Set, t Trigger, opts Options) (*Result, error) {
	if opts.M == 0 {
		opts.M = 100
	}
	if opts.Alpha == 0 {
		opts.Alpha = 0.01
	}
	if opts.M < 2 {
		return nil, errors.New("badnets verification needs at least 2 images")
	}
	if err := t.Validate(test.H, test.W, len(test.Classes)); err != nil {
		return nil, err
	}
	var others []int
	for i, l := range test.Labels {
		if l != t.Target && (len(opts.Sources) == 0 || slices.Contains(opts.Sources, l)) {
			others = append(others, i)
		}
	}
	if len(others) < opts.M {
		return nil, fmt.Errorf("%d test images outside the target class (of classes %v), %d asked for", len(others), opts.Sources, opts.M)
	}
	rng := rand.New(rand.NewPCG(opts.Seed, 0x76657269))
	rng.Shuffle(len(others), func(i, j int) { others[i], others[j] = others[j], others[i] })
	imgs := make([][]uint8, opts.M)
	orig := make([][]uint8, opts.M)
	for k, i := range others[:opts.M] {
		orig[k] = test.Image(i)
		imgs[k] = t.Stamp(orig[k], test.H, test.W)
	}
	res := &Result{M: opts.M, TriggerClass: t.Target}
	var err error
	var hitS, hitB int
	if res.ProbSuspect, hitS, err = targetProbs(suspect, imgs, test.H, test.W, t.Target); err != nil {
		return nil, fmt.Errorf("the suspect: %w", err)
	}
	if res.ProbBenign, hitB, err = targetProbs(ref, imgs, test.H, test.W, t.Target); err != nil {
		return nil, fmt.Errorf("the reference: %w", err)
	}
	res.SuccessRate, res.BenignRate = float64(hitS)/float64(opts.M), float64(hitB)/float64(opts.M)
	shifted := make([]float64, opts.M)
	for i, p := range res.ProbSuspect {
		shifted[i] = p - opts.MinDelta
		res.DeltaMu += (p - res.ProbBenign[i]) / float64(opts.M)
	}
	if res.Test, err = stats.PairedT(shifted, res.ProbBenign, stats.Greater); err != nil {
		return nil, err
	}
	res.P = res.Test.P
	clean, err := suspect.Probs(orig, test.H, test.W)
	if err != nil {
		return nil, fmt.Errorf("the suspect, on the images without the trigger: %w", err)
	}
	if len(clean) != len(orig) {
		return nil, fmt.Errorf("the suspect answered %d of %d images", len(clean), len(orig))
	}
	correct := 0
	for k, i := range others[:opts.M] {
		if classifier.Top1(clean[k]) == test.Labels[i] {
			correct++
		}
	}
	res.Accuracy = float64(correct) / float64(opts.M)
	res.AccuracyP = stats.BinomialUpper(correct, opts.M, 1/float64(max(2, len(test.Classes))))
	switch {
	case res.AccuracyP >= opts.Alpha:
		res.Verdict = "inconclusive"
	case res.P < opts.Alpha:
		res.Verdict, res.Stolen = "stolen", true
	default:
		res.Verdict = "not stolen"
	}
	return res, nil
}

// targetProbs asks p about imgs and returns each answer's target-class probability and how
// many answers chose the target.
func targetProbs(p classifier.Prober, imgs [][]uint8, h, w, target int) ([]float64, int, error) {
	out, err := p.Probs(imgs, h, w)
	if err != nil {
		return nil, 0, err
	}
	if len(out) != len(imgs) {
		return nil, 0, fmt.Errorf("%d answers for %d images", len(out), len(imgs))
	}
	probs := make([]float64, len(out))
	hits := 0
	for i, o := range out {
		if target >= len(o) {
			return nil, 0, fmt.Errorf("an answer of %d classes has no target class %d", len(o), target)
		}
		probs[i] = float64(o[target])
		if classifier.Top1(o) == target {
			hits++
		}
	}
	return probs, hits, nil
}

// Package conferrable is the fingerprint of conferrable adversarial examples (Lukas, Zhang and
// Kerschbaum, ICLR 2021), the baseline built to recognise a victim's students without any
// watermark: clean images perturbed within a small L∞ ball towards a target class so that the
// victim and the owner's own students of it answer the target and models that never learned
// from the victim do not. A suspect that answers the targets more often than a clean reference
// model has inherited the victim's decision boundary where it is specific to the victim.
//
// Making the examples needs the owner's models' weights (input gradients); testing a suspect
// needs only its answers, so a served model can be tested too.
package conferrable

import (
	"context"
	"errors"
	"fmt"
	"math"

	"move/internal/classifier"
	"move/internal/features"
	"move/internal/nn"
	"move/internal/stats"
	"move/internal/tensor"
)

// Options configure Generate and Verify.
type Options struct {
	Eps    float64 `json:"eps"`    // L∞ radius in [0, 1] pixel space (default 8/255)
	Steps  int     `json:"steps"`  // signed-gradient steps (default 30), each of 2.5·Eps/Steps
	Lambda float64 `json:"lambda"` // weight of the references' term against the surrogates' (default 1)
	Batch  int     `json:"batch"`  // images per forward-backward pass (default 100)
}

func (o *Options) defaults() {
	if o.Eps == 0 {
		o.Eps = 8.0 / 255
	}
	if o.Steps == 0 {
		o.Steps = 30
	}
	if o.Lambda == 0 {
		o.Lambda = 1
	}
	if o.Batch == 0 {
		o.Batch = 100
	}
}

// Example is one fingerprint image: the perturbed image, the class the victim is steered to
// and the label of the clean image it came from.
type Example struct {
	Image  []uint8 `json:"image"`
	Target int     `json:"target"`
	Label  int     `json:"label"`
}

// Fingerprint is a set of examples of h x w RGB images.
type Fingerprint struct {
	H        int       `json:"h"`
	W        int       `json:"w"`
	Options  Options   `json:"options"`
	Examples []Example `json:"examples"`
}

// Generate perturbs each image (h x w RGB, with its label) towards the victim's second most
// likely class t, by signed-gradient descent within Options.Eps of the image on
//
//	CE(victim, t) + mean_s CE(s, t) − Lambda · mean_r log(1 − p_r(t))
//
// over the surrogates s (the owner's students of the victim) and the references r (models that
// never learned from it): the victim and its students are pulled to t, the references pushed
// away from it. All models must be local, of the images' size.
func Generate(ctx context.Context, victim classifier.Model, surrogates, references []classifier.Model, imgs [][]uint8, labels []int, h, w int, o Options) (*Fingerprint, error) {
	o.defaults()
	if len(imgs) == 0 || len(imgs) != len(labels) {
		return nil, fmt.Errorf("%d images with %d labels", len(imgs), len(labels))
	}
	if len(references) == 0 {
		return nil, errors.New("no reference models: the examples need models to be specific against")
	}
	all := append(append([]classifier.Model{victim}, surrogates...), references...)
	for i, m := range all {
		if !m.IsLocal() {
			return nil, fmt.Errorf("model %d is not local: making the examples needs the weights", i)
		}
		if m.Size > 0 && (m.Size != h || m.Size != w) {
			return nil, fmt.Errorf("model %d takes %dx%d images, these are %dx%d", i, m.Size, m.Size, w, h)
		}
	}
	fp := &Fingerprint{H: h, W: w, Options: o}
	for lo := 0; lo < len(imgs); lo += o.Batch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hi := min(lo+o.Batch, len(imgs))
		ex, err := perturb(victim, surrogates, references, imgs[lo:hi], h, w, o)
		if err != nil {
			return nil, err
		}
		for i := range ex {
			ex[i].Label = labels[lo+i]
		}
		fp.Examples = append(fp.Examples, ex...)
	}
	return fp, nil
}

// pixels returns the images as [0, 1] floats, one after the other.
func pixels(imgs [][]uint8, d int) ([]float32, error) {
	x := make([]float32, len(imgs)*d)
	for b, im := range imgs {
		if len(im) != d {
			return nil, fmt.Errorf("image %d has %d bytes, want %d", b, len(im), d)
		}
		for j, v := range im {
			x[b*d+j] = float32(v) / 255
		}
	}
	return x, nil
}

// perturb makes the examples of one batch.
func perturb(victim classifier.Model, surrogates, references []classifier.Model, imgs [][]uint8, h, w int, o Options) ([]Example, error) {
	n, d := len(imgs), h*w*3
	x0, err := pixels(imgs, d)
	if err != nil {
		return nil, err
	}
	// The target: the victim's second choice on the clean image (its answers: one forward pass).
	probs, err := victim.Probs(imgs, h, w)
	if err != nil {
		return nil, err
	}
	targets := make([]int, n)
	for b, p := range probs {
		first := classifier.Top1(p)
		second := (first + 1) % len(p)
		for c, v := range p {
			if c != first && v > p[second] {
				second = c
			}
		}
		targets[b] = second
	}
	delta := make([]float32, n*d)
	px := make([]float32, n*d)
	total := make([]float32, n*d)
	step := float32(2.5 * o.Eps / float64(o.Steps))
	eps := float32(o.Eps)
	add := func(m classifier.Model, weight float64, repel bool) error {
		g, _, err := Objective(m, px, n, h, w, targets, repel)
		if err != nil {
			return err
		}
		for i, v := range g {
			total[i] += float32(weight) * v
		}
		return nil
	}
	for range o.Steps {
		for i := range px {
			px[i] = x0[i] + delta[i]
		}
		clear(total)
		if err := add(victim, 1, false); err != nil {
			return nil, err
		}
		for _, s := range surrogates {
			if err := add(s, 1/float64(len(surrogates)), false); err != nil {
				return nil, err
			}
		}
		for _, r := range references {
			if err := add(r, o.Lambda/float64(len(references)), true); err != nil {
				return nil, err
			}
		}
		for i, g := range total {
			v := delta[i]
			switch {
			case g > 0:
				v -= step
			case g < 0:
				v += step
			}
			v = min(eps, max(-eps, v))
			delta[i] = min(1, max(0, x0[i]+v)) - x0[i]
		}
	}
	out := make([]Example, n)
	for b := range n {
		im := make([]uint8, d)
		for j := range im {
			im[j] = uint8(math.Round(float64(min(1, max(0, x0[b*d+j]+delta[b*d+j]))) * 255))
		}
		out[b] = Example{Image: im, Target: targets[b]}
	}
	return out, nil
}

// Objective returns, for the images px ([0, 1] pixels, n of h x w RGB) and target classes, the
// gradient with respect to the pixels of each image's own loss, and the model's probabilities:
// the cross-entropy at the target, −log p(t), or with repel, −log(1 − p(t)) (small when the
// model does not answer t). d(−log(1 − p))/dx = −p/(1 − p) · d(log p)/dx, so both come from one
// input-gradient pass.
func Objective(m classifier.Model, px []float32, n, h, w int, targets []int, repel bool) ([]float32, [][]float64, error) {
	x := tensor.New(n, h, w, 3)
	for i := range x.Data {
		c := i % 3
		x.Data[i] = (px[i] - m.Norm.Mean[c]) / m.Norm.Std[c]
	}
	g, logits, err := features.InputGradientLogits(m.Local, x, targets)
	if err != nil {
		return nil, nil, err
	}
	k := logits.Dim(1)
	sm := nn.SoftmaxProbs(logits)
	probs := make([][]float64, n)
	d := h * w * 3
	for b := range n {
		probs[b] = make([]float64, k)
		for c, v := range sm.Data[b*k : (b+1)*k] {
			probs[b][c] = float64(v)
		}
		f := 1.0
		if repel {
			p := min(probs[b][targets[b]], 1-1e-6)
			f = -p / (1 - p)
		}
		for j := b * d; j < (b+1)*d; j++ {
			g.Data[j] *= float32(f) / m.Norm.Std[j%3]
		}
	}
	return g.Data, probs, nil
}

// Scores returns m's probability of each example's target (its answers only: m may be served).
func (f *Fingerprint) Scores(m classifier.Model) ([]float64, error) {
	imgs := make([][]uint8, len(f.Examples))
	for i, e := range f.Examples {
		imgs[i] = e.Image
	}
	probs, err := m.Probs(imgs, f.H, f.W)
	if err != nil {
		return nil, err
	}
	if len(probs) != len(imgs) {
		return nil, fmt.Errorf("asked for %d predictions, got %d", len(imgs), len(probs))
	}
	out := make([]float64, len(imgs))
	for i, e := range f.Examples {
		if e.Target >= len(probs[i]) {
			return nil, fmt.Errorf("example %d targets class %d; the model answers %d classes", i, e.Target, len(probs[i]))
		}
		out[i] = float64(probs[i][e.Target])
	}
	return out, nil
}

// Verify tests H1: the suspect's mean probability of the targets exceeds the reference's by
// more than margin (one-tailed paired t-test over the examples).
func (f *Fingerprint) Verify(suspect, reference classifier.Model, margin float64) (stats.Result, error) {
	s, err := f.Scores(suspect)
	if err != nil {
		return stats.Result{}, fmt.Errorf("suspect: %w", err)
	}
	r, err := f.Scores(reference)
	if err != nil {
		return stats.Result{}, fmt.Errorf("reference: %w", err)
	}
	for i := range r {
		r[i] += margin
	}
	t, err := stats.PairedT(s, r, stats.Greater)
	t.DeltaMu += margin
	return t, err
}

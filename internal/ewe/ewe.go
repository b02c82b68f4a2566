// Package ewe is the entangled-watermarks baseline MOVE is compared with (Jia et al., USENIX
// Security 2021, "Entangled Watermarks as a Defense against Model Extraction"). A BadNets
// watermark lives in neurons of its own, so a student that learns only the task from the
// victim's answers does not inherit it. Entangled watermarks train the victim so that the
// watermarked inputs (images of a source class with a trigger, labelled a target class) share
// the representation of the target class's clean images: the victim's loss adds the soft
// nearest-neighbour loss (SNNL) between the two groups, maximised, on its penultimate
// features. A student that learns the target class then learns the watermark with it, so the
// owner hopes.
//
// Verification is BadNets' test on the source class (badnets.Verify with Sources): the
// suspect's target-class probability on stamped source-class test images against a benign
// reference.
package ewe

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"move/internal/badnets"
	"move/internal/data"
	"move/internal/models"
	"move/internal/nn"
	"move/internal/tensor"
)

// Watermark is an entangled watermark: BadNets' trigger on images of class Source, labelled
// Trigger.Target, Rate x the training set's size of them added to it, and the weight Kappa of
// the SNNL term in the victim's loss.
type Watermark struct {
	Trigger badnets.Trigger `json:"trigger"`
	Source  int             `json:"source"`
	Rate    float64         `json:"rate"`
	Kappa   float64         `json:"kappa"`
}

// Default is the entangled watermark of an image size and rate: BadNets' default trigger
// (target class 0), source class 1, Kappa 0.5 (at 2, a CIFAR-10 resnet20 lost 24 points of
// accuracy: the term then outweighs the task).
func Default(size int, rate float64) Watermark {
	return Watermark{Trigger: badnets.DefaultTrigger(size), Source: 1, Rate: rate, Kappa: 0.5}
}

// Validate checks the watermark against images of h x w with k classes.
func (w Watermark) Validate(h, wd, k int) error {
	if err := w.Trigger.Validate(h, wd, k); err != nil {
		return err
	}
	switch {
	case w.Source < 0 || w.Source >= k || w.Source == w.Trigger.Target:
		return fmt.Errorf("source class %d of %d (target %d)", w.Source, k, w.Trigger.Target)
	case !(w.Rate > 0 && w.Rate < 1):
		return fmt.Errorf("watermarking rate %g: want (0, 1)", w.Rate)
	case !(w.Kappa >= 0):
		return fmt.Errorf("SNNL weight %g: want >= 0", w.Kappa)
	}
	return nil
}

// Mark returns the owner's training set with the watermark: clean followed by Rate x n
// source-class images (drawn with seed, each as often as the count needs), stamped and
// labelled the target, and which rows of it are watermarks.
func Mark(clean *data.Set, w Watermark, seed uint64) (*data.Set, []bool, error) {
	if err := w.Validate(clean.H, clean.W, len(clean.Classes)); err != nil {
		return nil, nil, err
	}
	var src []int
	for i, l := range clean.Labels {
		if l == w.Source {
			src = append(src, i)
		}
	}
	n := int(w.Rate * float64(clean.Len()))
	if n < 1 || len(src) == 0 {
		return nil, nil, fmt.Errorf("rate %g of %d images adds %d watermarks from %d images of class %d", w.Rate, clean.Len(), n, len(src), w.Source)
	}
	rng := rand.New(rand.NewPCG(seed, 0x657765)) // "ewe"
	rng.Shuffle(len(src), func(i, j int) { src[i], src[j] = src[j], src[i] })
	marked := &data.Set{Classes: clean.Classes, H: clean.H, W: clean.W, Pixels: append([]uint8(nil), clean.Pixels...),
		Labels: append([]int(nil), clean.Labels...)}
	isWM := make([]bool, clean.Len(), clean.Len()+n)
	for k := range n {
		marked.Pixels = append(marked.Pixels, w.Trigger.Stamp(clean.Image(src[k%len(src)]), clean.H, clean.W)...)
		marked.Labels = append(marked.Labels, w.Trigger.Target)
		isWM = append(isWM, true)
	}
	return marked, isWM, nil
}

// Loss is the victim's training loss (train.Options.Loss) on the marked set: the
// cross-entropy with the set's labels minus Kappa times the SNNL, on m's pooled features,
// between the batch's watermarks and its clean target-class images (the features of the
// batch's augmented images, in training mode). The temperature is each batch's mean squared
// distance between those features, so the term does not depend on their scale.
func Loss(m models.Model, marked *data.Set, isWM []bool, w Watermark) (func(tp *nn.Tape, logits *nn.Var, x *tensor.Tensor, idx []int) *nn.Var, error) {
	e, ok := m.(models.Embedder)
	if !ok {
		return nil, fmt.Errorf("entangled watermarks need the pooled features of the network; %s has none", m.Arch())
	}
	if len(isWM) != marked.Len() {
		return nil, errors.New("the watermark marks do not match the training set")
	}
	return func(tp *nn.Tape, logits *nn.Var, x *tensor.Tensor, idx []int) *nn.Var {
		labels := make([]int, len(idx))
		groups := make([]int, len(idx))
		include := make([]bool, len(idx))
		wm, cl := 0, 0
		for k, i := range idx {
			labels[k] = marked.Labels[i]
			switch {
			case isWM[i]:
				include[k], groups[k] = true, 1
				wm++
			case marked.Labels[i] == w.Trigger.Target:
				include[k] = true
				cl++
			}
		}
		loss := nn.CrossEntropy(tp, logits, labels)
		if w.Kappa == 0 || wm == 0 || cl == 0 {
			return loss
		}
		f := e.Embed(tp, nn.Const(x), true)
		t := meanSquaredDistance(f.Value, include)
		if !(t > 0) {
			return loss
		}
		return nn.Add(tp, loss, nn.Scale(tp, nn.SNNL(tp, f, groups, include, t), -float32(w.Kappa)))
	}, nil
}

// meanSquaredDistance is the mean of |f_i - f_j|^2 over pairs of included rows of f [N][D].
func meanSquaredDistance(f *tensor.Tensor, include []bool) float64 {
	d := f.Shape[1]
	var s float64
	pairs := 0
	for i := range include {
		for j := i + 1; j < len(include); j++ {
			if !include[i] || !include[j] {
				continue
			}
			for k := range d {
				v := float64(f.Data[i*d+k] - f.Data[j*d+k])
				s += v * v
			}
			pairs++
		}
	}
	if pairs == 0 {
		return 0
	}
	return s / float64(pairs)
}

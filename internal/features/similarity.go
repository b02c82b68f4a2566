package features

import (
	"fmt"
	"math"

	"move/internal/models"
	"move/internal/tensor"
)

// GradSimilarity names the input-gradient similarity family: a suspect's loss gradient with
// respect to each key image, at full resolution, compared by cosine with the victim's gradient
// at the same image (Similarity). It needs no classifier: the victim is the reference, and a
// suspect whose gradients agree with the victim's more than a clean model's do has learned the
// victim's function. It reads a suspect of any architecture with the victim's input size.
// (Subtracting the suspect's agreement with the owner's clean models, tried first, rewards
// any model unlike those clean models: it accused a model trained on other data.)
const GradSimilarity = "input-grad-sim"

// UnitInputGradients returns, for each image of x (normalised, NHWC) with its label, the
// gradient of m's cross-entropy with respect to the image, divided by its Euclidean norm
// (a zero gradient stays zero): h·w·c values per image, one backward pass for the batch.
func UnitInputGradients(m models.Model, x *tensor.Tensor, labels []int) ([][]float64, error) {
	n := x.Shape[0]
	if len(labels) != n {
		return nil, fmt.Errorf("%d labels for %d images", len(labels), n)
	}
	g, err := InputGradient(m, x, labels)
	if err != nil {
		return nil, err
	}
	d := len(g.Data) / n
	out := make([][]float64, n)
	for i := range n {
		v := make([]float64, d)
		var ss float64
		for j, x := range g.Data[i*d : (i+1)*d] {
			v[j] = float64(x)
			ss += v[j] * v[j]
		}
		if ss > 0 {
			s := 1 / math.Sqrt(ss)
			for j := range v {
				v[j] *= s
			}
		}
		out[i] = v
	}
	return out, nil
}

// Similarity returns, per image i, the cosine between a model's unit input gradient g[i] and
// the victim's victim[i] at the same image (both from UnitInputGradients): 1 for the victim's
// copy, and for another model how far its loss falls the way the victim's does. It depends
// only on the functions the two models compute.
func Similarity(g, victim [][]float64) ([]float64, error) {
	if len(victim) != len(g) {
		return nil, fmt.Errorf("%d victim gradients for %d images", len(victim), len(g))
	}
	out := make([]float64, len(g))
	for i := range g {
		a, err := dot(g[i], victim[i])
		if err != nil {
			return nil, fmt.Errorf("image %d: %w", i, err)
		}
		out[i] = a
	}
	return out, nil
}

func dot(a, b []float64) (float64, error) {
	if len(a) != len(b) {
		return 0, fmt.Errorf("gradients of %d and %d values: the models read images of different sizes", len(a), len(b))
	}
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s, nil
}

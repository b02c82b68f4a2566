package features

import (
	"fmt"

	"move/internal/models"
	"move/internal/nn"
	"move/internal/tensor"
)

// InputGrad is the white-box family of input-gradient signs: for each transformed image x',
// the sign of the gradient of the cross-entropy (at the image's label) with respect to x'
// itself, averaged over the cells of a Grid x Grid partition of the image, per channel. It
// depends only on the function the model computes, not on how its hidden units are ordered or
// parametrised, so a classifier over it can recognise a student trained from its own
// initialisation, and a suspect of another architecture than the victim's. (The weight
// layouts, Compressed and Full, are the paper's features.)
const InputGrad = "input-grad"

// InputGradForm is the version of the input-gradient feature definition; meta-classifiers
// record it.
const InputGradForm = "input-grad-v1"

// Grid is the side of the cell grid that pools input-gradient signs (3·Grid² features).
const Grid = 8

// Layouts are the white-box families move computes.
var Layouts = []string{Compressed, Full, InputGrad}

// InputGradients returns the pooled input-gradient signs of m at each image of x (normalised,
// NHWC) with labels: 3·Grid² values in [-1, 1] per image. The model runs in inference mode, so
// an image's gradient does not depend on the others of the batch, and one backward pass gives
// them all; the model's weights get no gradient.
func InputGradients(m models.Model, x *tensor.Tensor, labels []int) ([][]float32, error) {
	n, h, w, c := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	if len(labels) != n {
		return nil, fmt.Errorf("%d labels for %d images", len(labels), n)
	}
	if h < Grid || w < Grid {
		return nil, fmt.Errorf("images of %dx%d are smaller than the %dx%d grid", h, w, Grid, Grid)
	}
	g, err := InputGradient(m, x, labels)
	if err != nil {
		return nil, err
	}
	out := make([][]float32, n)
	for i := range n {
		v := make([]float32, Grid*Grid*c)
		for gy := range Grid {
			y0, y1 := gy*h/Grid, (gy+1)*h/Grid
			for gx := range Grid {
				x0, x1 := gx*w/Grid, (gx+1)*w/Grid
				for ch := range c {
					var s float32
					for yy := y0; yy < y1; yy++ {
						for xx := x0; xx < x1; xx++ {
							s += sign(g.Data[((i*h+yy)*w+xx)*c+ch])
						}
					}
					v[(gy*Grid+gx)*c+ch] = s / float32((y1-y0)*(x1-x0))
				}
			}
		}
		out[i] = v
	}
	return out, nil
}

// InputGradient is the gradient of the cross-entropy of m at labels with respect to its
// input x (NHWC), per image: the gradient of each image's own loss (not of the batch mean).
func InputGradient(m models.Model, x *tensor.Tensor, labels []int) (*tensor.Tensor, error) {
	n := x.Shape[0]
	st := m.Store()
	st.Freeze(true)
	defer st.Freeze(false)
	tp := nn.NewTape(true)
	xv := nn.Leaf(x.Clone())
	loss := nn.CrossEntropy(tp, m.Forward(tp, xv, false), labels)
	if err := tp.Backward(loss); err != nil {
		return nil, err
	}
	tp.Reset()
	g := xv.Grad
	for i := range g.Data { // the loss is the batch mean: each image's own loss is n times its share
		g.Data[i] *= float32(n)
	}
	return g, nil
}

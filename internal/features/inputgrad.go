package features

import (
	"fmt"

	"move/internal/models"
	"move/internal/nn"
	"move/internal/tensor"
)

// The input-gradient families: for each transformed image x', the gradient of the
// cross-entropy (at the image's label) with respect to x' itself, pooled over the cells of a
// Grid x Grid partition of the image, per channel. InputGrad pools the gradient divided by its
// root mean square over the image (the direction of the gradient, its size set aside);
// InputSign pools its signs. Both depend only on the function the model computes, not on how
// its hidden units are ordered or parametrised, so a classifier over them can recognise a
// student trained from its own initialisation, and a suspect of another architecture than the
// victim's. (The weight layouts, Compressed and Full, are the paper's features.) On CIFAR-10
// quick, InputGrad's classifier reaches a held-out accuracy of 0.75, InputSign's 0.69.
const (
	InputGrad = "input-grad"
	InputSign = "input-sign"
)

// IsInput reports whether layout is an input-gradient family.
func IsInput(layout string) bool { return layout == InputGrad || layout == InputSign }

// InputGradForm is the version of the input-gradient feature definition; meta-classifiers
// record it.
const InputGradForm = "input-v1"

// Grid is the side of the cell grid that pools input-gradient signs (3·Grid² features).
const Grid = 8

// Layouts are the white-box families move computes.
var Layouts = []string{Compressed, Full, InputGrad, InputSign, Raw}

// Families name the white-box feature families (move meta --features) by their layouts:
// the paper's weight-gradient signs, compressed per kernel (weights) or all of them
// (weights-full), the gradients themselves (weights-raw, an ablation), the input-gradient
// families, and the input-gradient similarity with the victim (GradSimilarity), which trains
// no classifier.
var Families = map[string]string{"weights": Compressed, "weights-full": Full, "weights-raw": Raw, "input-grad": InputGrad, "input-sign": InputSign, GradSimilarity: GradSimilarity, GainTop: GainTop}

// FamilyNames are the keys of Families, in the order help texts and tables list them.
var FamilyNames = []string{"weights", "weights-full", "weights-raw", "input-grad", "input-sign", GradSimilarity, GainTop}

// InputGradients returns the pooled input-gradient features (family InputGrad or InputSign)
// of m at each image of x (normalised, NHWC) with labels: 3·Grid² values per image. The model
// runs in inference mode, so an image's gradient does not depend on the others of the batch,
// and one backward pass gives them all; the model's weights get no gradient.
func InputGradients(m models.Model, x *tensor.Tensor, labels []int, family string) ([][]float32, error) {
	if !IsInput(family) {
		return nil, fmt.Errorf("unknown input-gradient family %q", family)
	}
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
	if family == InputGrad {
		for i := range n { // each image's gradient divided by its root mean square
			divideByRMS(g.Data[i*h*w*c:(i+1)*h*w*c], 1e-12)
		}
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
							if v := g.Data[((i*h+yy)*w+xx)*c+ch]; family == InputSign {
								s += sign(v)
							} else {
								s += v
							}
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
	g, _, err := InputGradientLogits(m, x, labels)
	return g, err
}

// InputGradientLogits is InputGradient that also returns the logits [N][K] of the forward
// pass the gradient came from.
func InputGradientLogits(m models.Model, x *tensor.Tensor, labels []int) (g, logits *tensor.Tensor, err error) {
	n := x.Shape[0]
	st := m.Store()
	st.Freeze(true)
	defer st.Freeze(false)
	tp := nn.NewTape(true)
	xv := nn.Leaf(x.Clone())
	out := m.Forward(tp, xv, false)
	logits = out.Value.Clone()
	loss := nn.CrossEntropy(tp, out, labels)
	if err := tp.Backward(loss); err != nil {
		return nil, nil, err
	}
	tp.Reset()
	g = xv.Grad
	for i := range g.Data { // the loss is the batch mean: each image's own loss is n times its share
		g.Data[i] *= float32(n)
	}
	return g, logits, nil
}

// viewShifts are the augmented views of a key image that an input-gradient test averages
// over (MaxViews of them): (dx, dy) shifts of up to 2 pixels with the border replicated, and
// horizontal flips. View 0 is the image itself.
var viewShifts = [][3]int{{0, 0, 0}, {0, 0, 1}, {1, 1, 0}, {-1, -1, 1}, {2, 0, 0}, {0, 2, 1}, {-2, 0, 1}, {0, -2, 0}}

// MaxViews is how many augmented views View knows.
var MaxViews = len(viewShifts)

// View returns augmented view v (0 <= v < MaxViews) of an RGB image of h x w pixels: the image
// shifted by up to 2 pixels (the border replicated) and, for odd v, mirrored. A classifier's
// score on one image is noisy; its mean over a few views of the same image is not, and the
// test still reads the same key images.
func View(p []uint8, h, w, v int) []uint8 {
	a := viewShifts[v]
	if v == 0 {
		return p
	}
	out := make([]uint8, len(p))
	for y := range h {
		sy := min(max(y-a[1], 0), h-1)
		for x := range w {
			sx := x - a[0]
			if a[2] == 1 {
				sx = w - 1 - sx
			}
			sx = min(max(sx, 0), w-1)
			copy(out[(y*w+x)*3:(y*w+x)*3+3], p[(sy*w+sx)*3:(sy*w+sx)*3+3])
		}
	}
	return out
}

// Package features computes what MOVE's meta-classifier looks at. White-box: the sign of the
// gradient of the cross-entropy with respect to the model's weights in their batch-norm-folded
// form, for one transformed image (full, or compressed as in the paper's code: 1-D parameters
// skipped and convolution kernels summed over their spatial taps). Black-box: the differences between the class probabilities
// of augmented transformed images and of the original image, concatenated over five
// augmentations (identity, horizontal flip, shifts to the bottom-right, right and bottom).
package features

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"strings"

	"move/internal/classifier"
	"move/internal/models"
	"move/internal/nn"
	"move/internal/tensor"
)

// The two modes of verification: what the verifier sees of a suspect.
const (
	White = "white" // its weights: gradient-sign features
	Black = "black" // its answers: probability-difference features
)

// Modes are both modes, in the order tables print them.
var Modes = []string{White, Black}

// Layouts of white-box vectors.
const (
	Full       = "full"
	Compressed = "compressed"
	// Raw is the compressed layout without the signs: the gradients themselves (summed over
	// the kernel taps), each image's vector divided by its root mean square. An ablation of
	// the paper's choice of signs; a folded batch norm's scale is not divided out (only its
	// sign), so a model and its folded export do not give the same raw vector.
	Raw = "compressed-raw"
)

// Form is the version of the white-box feature definition; meta-classifiers record it.
const Form = "folded-v1"

// Part is one tensor of a white-box vector: the gradient of Param, its sign flipped per
// output channel where Flip is set.
type Part struct {
	Param *nn.Var
	Name  string    // the parameter's name in its model
	Flip  []float32 // ±1 per output channel: a kernel whose batch norm was merged into it
}

// Structure is the layout of a model's white-box vector. Gradients are read in the folded
// form that exporters such as PyTorch's produce by default: each batch norm (in inference
// mode) that alone consumes a convolution's output is merged into that convolution,
// w' = w·s and b' = (b - mean)·s + beta with s = gamma/√(var+eps). Since w' = w·s per output
// channel, dL/dw' = dL/dw / s, whose sign is sign(dL/dw)·sign(gamma), and dL/db' = dL/dbeta;
// gamma and the convolution's own bias have no counterpart. Parts come in the order the
// forward pass first uses them. A model, its ONNX export and its folded ONNX export thus get
// the same vector.
type Structure struct {
	Parts     []Part
	Folded    int    // batch norms merged into their convolutions
	Signature string // SHA-256 over the parts' shapes: equal for models whose vectors align
}

// Describe traces one forward pass of m on a size x size image and returns its white-box
// structure.
func Describe(m models.Model, size int) (*Structure, error) {
	var nodes []nn.Node
	tp := nn.NewTape(false)
	tp.Trace(func(n nn.Node) { nodes = append(nodes, n) })
	x := nn.Const(tensor.New(1, size, size, 3))
	var y *nn.Var
	if err := nn.Catch(func() { y = m.Forward(tp, x, false) }); err != nil {
		return nil, fmt.Errorf("tracing the model at %dx%d: %w", size, size, err)
	}
	names := map[*nn.Var]string{}
	for k, p := range m.Store().Params() {
		names[p] = m.Store().ParamNames()[k]
	}
	// merged[conv kernel] = the batch norm folded into it.
	folds := nn.Folds(nodes, y)
	merged := map[*nn.Var]nn.Node{}
	skip := map[*nn.Var]bool{}
	for _, c := range nodes {
		bn, ok := folds[c.Out]
		if c.Op != "Conv" || !ok {
			continue
		}
		if _, dup := merged[c.In[1]]; dup { // a kernel shared by two convolutions
			continue
		}
		merged[c.In[1]] = bn
		skip[bn.BN.Gamma], skip[bn.BN.Beta] = true, true
		if c.In[2] != nil {
			skip[c.In[2]] = true
		}
	}
	s := &Structure{Folded: len(merged)}
	seen := map[*nn.Var]bool{}
	h := sha256.New()
	add := func(p Part) {
		s.Parts = append(s.Parts, p)
		fmt.Fprintf(h, "%v;", p.Param.Shape())
	}
	for _, n := range nodes {
		for _, v := range n.In {
			if v == nil || seen[v] || !v.RequiresGrad() {
				continue
			}
			if _, ok := names[v]; !ok {
				continue
			}
			seen[v] = true
			if bn, ok := merged[v]; ok && n.Op == "Conv" && v == n.In[1] {
				flip := make([]float32, v.Shape()[0])
				for o := range flip {
					flip[o] = 1
					if bn.BN.Gamma.Data()[o] < 0 {
						flip[o] = -1
					}
				}
				add(Part{Param: v, Name: names[v], Flip: flip})
				add(Part{Param: bn.BN.Beta, Name: names[bn.BN.Beta]})
				seen[bn.BN.Beta] = true
				continue
			}
			if skip[v] {
				continue
			}
			add(Part{Param: v, Name: names[v]})
		}
	}
	if len(s.Parts) == 0 {
		return nil, fmt.Errorf("the model has no trainable weights")
	}
	s.Signature = hex.EncodeToString(h.Sum(nil))
	return s, nil
}

// Dim is the length of a white-box vector in a layout.
func (s *Structure) Dim(layout string) int {
	n := 0
	for _, p := range s.Parts {
		sh := p.Param.Shape()
		switch {
		case layout == Full:
			n += p.Param.Value.Len()
		case len(sh) == 4:
			n += sh[0] * sh[3]
		case len(sh) >= 2:
			n += p.Param.Value.Len()
		}
	}
	return n
}

// WhiteBox returns, for each image of the NHWC batch x (normalised as the model expects) and
// its label, the signs (-1, 0, +1) of the gradient of the cross-entropy with respect to the
// weights of m in its folded form (see Structure), evaluated in inference mode (batch-norm
// running statistics), one gradient per image from batched passes.
func WhiteBox(m models.Model, x *tensor.Tensor, labels []int, layout string) ([][]float32, error) {
	if layout != Full && layout != Compressed && layout != Raw {
		return nil, fmt.Errorf("unknown white-box layout %q (full, compressed or %s)", layout, Raw)
	}
	n, h, w, c := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	if len(labels) != n {
		return nil, fmt.Errorf("%d labels for %d images", len(labels), n)
	}
	if h != w {
		return nil, fmt.Errorf("images are %dx%d; white-box features need square images", h, w)
	}
	st, err := Describe(m, h)
	if err != nil {
		return nil, err
	}
	dim := st.Dim(layout)
	// One batched forward and backward pass per chunk of ExampleBatch images, with
	// per-example parameter gradients (nn.Tape.PerExample): the same gradients as one pass per
	// image, up to the chunk's 1/B factor, which neither the signs nor the raw layout's
	// normalisation see.
	b := ExampleBatch(m)
	perEx := true
	tp := nn.NewTape(true)
	tp.PerExample(true)
	out := make([][]float32, n)
	for lo := 0; lo < n; {
		hi := min(n, lo+b)
		xb := tensor.From(x.Data[lo*h*w*c:hi*h*w*c], hi-lo, h, w, c)
		m.Store().ZeroGrad()
		var err error
		pass := func() {
			err = tp.Backward(nn.CrossEntropy(tp, m.Forward(tp, nn.Const(xb), false), labels[lo:hi]))
		}
		if perEx {
			if perr := nn.Catch(pass); perr != nil {
				if !strings.Contains(perr.Error(), "per-example gradients") {
					panic(perr) // not about per-example support: as without it
				}
				// A graph that reaches a weight through an operation without per-example
				// support (an imported model's Add of a bias, say): one image per pass.
				tp.Reset()
				perEx, b = false, 1
				tp.PerExample(false)
				continue
			}
		} else {
			pass()
		}
		tp.Reset()
		if err != nil {
			return nil, err
		}
		for i := lo; i < hi; i++ {
			v := make([]float32, 0, dim)
			for _, p := range st.Parts {
				g := p.Param.Grad.Data
				if perEx {
					size := p.Param.Value.Len()
					g = p.Param.ExGrad.Data[(i-lo)*size : (i-lo+1)*size]
				}
				v = appendSigns(v, p, g, layout)
			}
			if layout == Raw {
				divideByRMS(v, 1e-30)
			}
			out[i] = v
		}
		lo = hi
	}
	for _, p := range m.Store().Params() {
		p.ExGrad = nil // up to 256 MiB that the model need not keep
	}
	return out, nil
}

// ExampleBatch is how many images WhiteBox reads per batched pass for m: 32, or fewer when
// their per-example gradients would exceed 64 Mi values (256 MiB).
func ExampleBatch(m models.Model) int {
	return max(1, min(32, (64<<20)/max(1, m.Store().NumParams())))
}

// divideByRMS divides v by its root mean square (plus eps, against a zero vector).
func divideByRMS(v []float32, eps float64) {
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	scale := float32(1 / (math.Sqrt(ss/float64(len(v))) + eps))
	for k := range v {
		v[k] *= scale
	}
}

func sign(x float32) float32 {
	switch {
	case x > 0:
		return 1
	case x < 0:
		return -1
	}
	return 0
}

// appendSigns appends the features of part p read from g, a gradient of p.Param.
func appendSigns(v []float32, p Part, g []float32, layout string) []float32 {
	s := p.Param.Shape()
	flip := func(o int) float32 {
		if p.Flip == nil {
			return 1
		}
		return p.Flip[o]
	}
	switch {
	case layout == Full && p.Flip != nil:
		per := len(g) / s[0]
		for k, x := range g {
			v = append(v, sign(x)*flip(k/per))
		}
	case layout == Full || (len(s) >= 2 && len(s) != 4):
		for _, x := range g {
			if layout == Raw {
				v = append(v, x)
			} else {
				v = append(v, sign(x))
			}
		}
	case len(s) == 4: // [O][KH][KW][I] summed over the taps -> [O][I]
		o, taps, in := s[0], s[1]*s[2], s[3]
		for a := range o {
			for ci := range in {
				var sum float32
				for t := range taps {
					sum += g[(a*taps+t)*in+ci]
				}
				if layout == Raw {
					v = append(v, sum*flip(a))
				} else {
					v = append(v, sign(sum)*flip(a))
				}
			}
		}
	}
	return v
}

// Augmentations are the five of the paper, in order.
var Augmentations = []string{"identity", "hflip", "shift-bottom-right", "shift-right", "shift-bottom"}

// Augment applies augmentation k to an RGB image; shifts move the content by max(1, size/16)
// pixels, filling with black.
func Augment(p []uint8, h, w, k int) []uint8 {
	out := make([]uint8, len(p))
	s := max(1, min(h, w)/16)
	dx, dy := 0, 0
	switch k {
	case 0:
		copy(out, p)
		return out
	case 1:
		for y := range h {
			for x := range w {
				copy(out[(y*w+x)*3:(y*w+x)*3+3], p[(y*w+w-1-x)*3:])
			}
		}
		return out
	case 2:
		dx, dy = s, s
	case 3:
		dx = s
	case 4:
		dy = s
	}
	for y := dy; y < h; y++ {
		for x := dx; x < w; x++ {
			copy(out[(y*w+x)*3:(y*w+x)*3+3], p[((y-dy)*w+x-dx)*3:])
		}
	}
	return out
}

// BlackBox returns, for each (original, transformed) pair, the concatenation over the five
// augmentations of P(aug(transformed)) - P(original): K x 5 values. It asks the prober once, with
// six images per pair.
func BlackBox(p classifier.Prober, orig, styled [][]uint8, h, w int) ([][]float32, error) {
	f, _, err := BlackBoxViews(p, orig, [][][]uint8{styled}, h, w)
	if err != nil {
		return nil, err
	}
	return f[0], nil
}

// BlackBoxViews is BlackBox for several transformed versions (views) of the same originals,
// asked in one batch: views[v][i] is the v-th transformed version of orig[i]. It returns the
// features per view and pair, and the prober's probabilities of each original.
func BlackBoxViews(p classifier.Prober, orig [][]uint8, views [][][]uint8, h, w int) (feats [][][]float32, base [][]float32, err error) {
	for v, imgs := range views {
		if len(imgs) != len(orig) {
			return nil, nil, fmt.Errorf("%d originals for %d transformed images (view %d)", len(orig), len(imgs), v)
		}
	}
	na := len(Augmentations)
	per := 1 + na*len(views)
	batch := make([][]uint8, 0, per*len(orig))
	for i := range orig {
		batch = append(batch, orig[i])
		for _, imgs := range views {
			for k := range na {
				batch = append(batch, Augment(imgs[i], h, w, k))
			}
		}
	}
	probs, err := p.Probs(batch, h, w)
	if err != nil {
		return nil, nil, err
	}
	if len(probs) != len(batch) {
		return nil, nil, fmt.Errorf("asked for %d predictions, got %d", len(batch), len(probs))
	}
	feats = make([][][]float32, len(views))
	for v := range views {
		feats[v] = make([][]float32, len(orig))
	}
	base = make([][]float32, len(orig))
	for i := range orig {
		b := probs[i*per]
		base[i] = b
		for v := range views {
			vec := make([]float32, 0, na*len(b))
			for k := range na {
				pk := probs[i*per+1+v*na+k]
				if len(pk) != len(b) {
					return nil, nil, fmt.Errorf("prediction %d has %d classes, another %d", i, len(pk), len(b))
				}
				for j := range pk {
					vec = append(vec, pk[j]-b[j])
				}
			}
			feats[v][i] = vec
		}
	}
	return feats, base, nil
}

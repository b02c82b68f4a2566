// Package features computes what MOVE's meta-classifier looks at. White-box: the sign of the
// gradient of the cross-entropy with respect to the model's weights, for one transformed image
// (full, or compressed as in the paper's code: 1-D parameters skipped and convolution kernels
// summed over their spatial taps). Black-box: the differences between the class probabilities
// of augmented transformed images and of the original image, concatenated over five
// augmentations (identity, horizontal flip, shifts to the bottom-right, right and bottom).
package features

import (
	"fmt"

	"move/internal/data"
	"move/internal/models"
	"move/internal/nn"
	"move/internal/tensor"
	"move/internal/train"
)

// Layouts of white-box vectors.
const (
	Full       = "full"
	Compressed = "compressed"
)

// WhiteBoxDim is the length of a white-box vector of m in a layout.
func WhiteBoxDim(m models.Model, layout string) int {
	n := 0
	for _, p := range m.Store().Params() {
		s := p.Shape()
		switch {
		case layout == Full:
			n += p.Value.Len()
		case len(s) == 4:
			n += s[0] * s[3]
		case len(s) >= 2:
			n += p.Value.Len()
		}
	}
	return n
}

// WhiteBox returns, for each image of the NHWC batch x (normalised as the model expects) and
// its label, the sign (-1, 0, +1) of the gradient of the cross-entropy with respect to every
// weight of m, evaluated in inference mode (batch-norm running statistics), one image at a time.
func WhiteBox(m models.Model, x *tensor.Tensor, labels []int, layout string) ([][]float32, error) {
	if layout != Full && layout != Compressed {
		return nil, fmt.Errorf("unknown white-box layout %q (full or compressed)", layout)
	}
	n, h, w, c := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	if len(labels) != n {
		return nil, fmt.Errorf("%d labels for %d images", len(labels), n)
	}
	params := m.Store().Params()
	dim := WhiteBoxDim(m, layout)
	tp := nn.NewTape(true)
	out := make([][]float32, n)
	for i := range n {
		xi := tensor.From(x.Data[i*h*w*c:(i+1)*h*w*c], 1, h, w, c)
		m.Store().ZeroGrad()
		loss := nn.CrossEntropy(tp, m.Forward(tp, nn.Const(xi), false), labels[i:i+1])
		if err := tp.Backward(loss); err != nil {
			return nil, err
		}
		tp.Reset()
		v := make([]float32, 0, dim)
		for _, p := range params {
			v = appendSigns(v, p, layout)
		}
		out[i] = v
	}
	return out, nil
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

func appendSigns(v []float32, p *nn.Var, layout string) []float32 {
	g, s := p.Grad.Data, p.Shape()
	switch {
	case layout == Full || (len(s) >= 2 && len(s) != 4):
		for _, x := range g {
			v = append(v, sign(x))
		}
	case len(s) == 4: // [O][KH][KW][I] summed over the taps -> [O][I]
		o, taps, in := s[0], s[1]*s[2], s[3]
		for a := range o {
			for ci := range in {
				var sum float32
				for t := range taps {
					sum += g[(a*taps+t)*in+ci]
				}
				v = append(v, sign(sum))
			}
		}
	}
	return v
}

// Prober answers class probabilities for RGB images (8-bit, H x W x 3): a local model or a
// remote service. It does its own preprocessing.
type Prober interface {
	Probs(imgs [][]uint8, h, w int) ([][]float32, error)
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
func BlackBox(p Prober, orig, styled [][]uint8, h, w int) ([][]float32, error) {
	if len(orig) != len(styled) {
		return nil, fmt.Errorf("%d originals for %d transformed images", len(orig), len(styled))
	}
	var batch [][]uint8
	for i := range orig {
		batch = append(batch, orig[i])
		for k := range Augmentations {
			batch = append(batch, Augment(styled[i], h, w, k))
		}
	}
	probs, err := p.Probs(batch, h, w)
	if err != nil {
		return nil, err
	}
	if len(probs) != len(batch) {
		return nil, fmt.Errorf("asked for %d predictions, got %d", len(batch), len(probs))
	}
	na := len(Augmentations)
	out := make([][]float32, len(orig))
	for i := range orig {
		base := probs[i*(na+1)]
		var v []float32
		for k := range na {
			pk := probs[i*(na+1)+1+k]
			if len(pk) != len(base) {
				return nil, fmt.Errorf("prediction %d has %d classes, another %d", i, len(pk), len(base))
			}
			for j := range pk {
				v = append(v, pk[j]-base[j])
			}
		}
		out[i] = v
	}
	return out, nil
}

// LocalProber runs a model file's model in this process.
type LocalProber struct {
	Model models.Model
	Norm  data.Normalization
	Size  int // input size the model expects (images are resized to it)
}

// Probs implements Prober.
func (l LocalProber) Probs(imgs [][]uint8, h, w int) ([][]float32, error) {
	s := &data.Set{H: h, W: w}
	for _, p := range imgs {
		if l.Size > 0 && (h != l.Size || w != l.Size) {
			p = data.Resize(p, h, w, l.Size, l.Size)
		}
		s.Pixels = append(s.Pixels, p...)
		s.Labels = append(s.Labels, 0)
	}
	if l.Size > 0 {
		s.H, s.W = l.Size, l.Size
	}
	logits := train.Logits(l.Model, s, l.Norm, 256, nil)
	probs := nn.SoftmaxProbs(logits)
	k := probs.Dim(1)
	out := make([][]float32, len(imgs))
	for i := range out {
		out[i] = probs.Data[i*k : (i+1)*k]
	}
	return out, nil
}

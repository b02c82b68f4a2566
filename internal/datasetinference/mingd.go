package datasetinference

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"move/internal/classifier"
	"move/internal/data"
	"move/internal/features"
	"move/internal/tensor"
)

// GDOptions configure MinGD, the white-box distances.
type GDOptions struct {
	Steps    int     // gradient steps per target class and norm (default 20)
	StepL2   float64 // each L2 step's length in [0, 1] pixel space (default 0.1)
	StepLinf float64 // each Linf step's length in [0, 1] pixel space (default 1/255)
	Batch    int     // (image, target class) pairs per forward-backward pass (default 128)
}

func (o *GDOptions) defaults() {
	if o.Steps == 0 {
		o.Steps = 20
	}
	if o.StepL2 == 0 {
		o.StepL2 = 0.1
	}
	if o.StepLinf == 0 {
		o.StepLinf = 1.0 / 255
	}
	if o.Batch == 0 {
		o.Batch = 128
	}
}

// MinGD returns the white-box distances of the local classifier m (Maini et al.'s MinGD):
// for each image and each class t other than the one m answers there, the size of the
// perturbation that gradient descent on the cross-entropy towards t needs before m answers
// t, in L2 (normalised-gradient steps of StepL2) and in Linf (signed-gradient steps of
// StepLinf), the image kept in [0, 1]; (Steps+1) steps' length when t is never reached. An
// image's vector is its K-1 L2 distances, sorted, then its K-1 Linf distances in 8-bit
// levels, sorted: sorted, they read the same for any order of the classes.
func MinGD(m classifier.Model, o GDOptions) (Features, error) {
	if !m.IsLocal() {
		return nil, errors.New("white-box dataset inference needs the suspect's weights")
	}
	o.defaults()
	return func(imgs [][]uint8, h, w int) ([][]float32, error) {
		if len(imgs) == 0 {
			return nil, errors.New("no images to measure")
		}
		if m.Size > 0 && (h != m.Size || w != m.Size) {
			resized := make([][]uint8, len(imgs))
			for i, p := range imgs {
				if len(p) != h*w*3 {
					return nil, fmt.Errorf("an image has %d bytes, %dx%d RGB needs %d", len(p), h, w, h*w*3)
				}
				resized[i] = data.Resize(p, h, w, m.Size, m.Size)
			}
			imgs, h, w = resized, m.Size, m.Size
		}
		probs, err := m.Probs(imgs, h, w)
		if err != nil {
			return nil, err
		}
		k := m.Local.Classes()
		out := make([][]float32, len(imgs))
		for i := range out {
			out[i] = make([]float32, 0, 2*(k-1))
		}
		for _, linf := range []bool{false, true} {
			var pairs []gdPair
			for i := range imgs {
				start := classifier.Top1(probs[i])
				for t := range k {
					if t != start {
						pairs = append(pairs, gdPair{img: i, target: t})
					}
				}
			}
			for lo := 0; lo < len(pairs); lo += o.Batch {
				chunk := pairs[lo:min(lo+o.Batch, len(pairs))]
				if err := descend(m, imgs, h, w, chunk, linf, o); err != nil {
					return nil, err
				}
			}
			added := make([]int, len(imgs)) // this norm's distances of each image, sorted
			for _, p := range pairs {
				out[p.img] = append(out[p.img], p.dist)
				added[p.img]++
			}
			for i := range out {
				slices.Sort(out[i][len(out[i])-added[i]:])
			}
		}
		return out, nil
	}, nil
}

// gdPair is one image and the class gradient descent steers it to, and the distance found.
type gdPair struct {
	img, target int
	dist        float32
}

// descend runs gradient descent for a batch of pairs at once, writing each pair's distance.
func descend(m classifier.Model, imgs [][]uint8, h, w int, pairs []gdPair, linf bool, o GDOptions) error {
	n, d := len(pairs), h*w*3
	x0 := make([]float32, n*d)
	delta := make([]float32, n*d)
	targets := make([]int, n)
	for b, p := range pairs {
		for j, v := range imgs[p.img] {
			x0[b*d+j] = float32(v) / 255
		}
		targets[b] = p.target
	}
	step, unit := o.StepL2, float32(1)
	if linf {
		step, unit = o.StepLinf, 255
	}
	done := make([]bool, n)
	for b := range pairs {
		pairs[b].dist = float32(float64(o.Steps+1)*step) * unit
	}
	x := tensor.New(n, h, w, 3)
	for s := 0; ; s++ {
		for i := range x.Data {
			c := i % 3
			x.Data[i] = (x0[i] + delta[i] - m.Norm.Mean[c]) / m.Norm.Std[c]
		}
		g, logits, err := features.InputGradientLogits(m.Local, x, targets)
		if err != nil {
			return err
		}
		k := logits.Dim(1)
		left := 0
		for b := range pairs {
			if done[b] {
				continue
			}
			if classifier.Top1(logits.Data[b*k:(b+1)*k]) == targets[b] {
				done[b] = true
				pairs[b].dist = norm(delta[b*d:(b+1)*d], linf) * unit
				continue
			}
			left++
		}
		if left == 0 || s == o.Steps {
			return nil
		}
		for b := range pairs {
			if done[b] {
				continue
			}
			gb, db, xb := g.Data[b*d:(b+1)*d], delta[b*d:(b+1)*d], x0[b*d:(b+1)*d]
			// The gradient with respect to the pixels: the input was (pixel - mean) / std.
			var ss float64
			for j := range gb {
				gb[j] /= m.Norm.Std[j%3]
				ss += float64(gb[j]) * float64(gb[j])
			}
			if ss == 0 {
				continue // a flat loss: no direction to descend
			}
			scale := float32(step / math.Sqrt(ss))
			for j := range gb {
				var v float32
				if linf {
					switch {
					case gb[j] > 0:
						v = -float32(step)
					case gb[j] < 0:
						v = float32(step)
					}
				} else {
					v = -scale * gb[j]
				}
				// Descend the loss towards the target, and stay an image.
				db[j] = min(1, max(0, xb[j]+db[j]+v)) - xb[j]
			}
		}
	}
}

// norm is the L2 or Linf length of v.
func norm(v []float32, linf bool) float32 {
	var s float64
	for _, x := range v {
		if linf {
			s = max(s, math.Abs(float64(x)))
		} else {
			s += float64(x) * float64(x)
		}
	}
	if linf {
		return float32(s)
	}
	return float32(math.Sqrt(s))
}

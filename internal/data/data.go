// Package data holds labelled image sets in memory and turns them into training batches:
// image-folder and CIFAR-10 binary readers, a synthetic set for tests and demos, the standard
// augmentation (random crop with padding, horizontal flip) and per-channel normalisation.
package data

import (
	"fmt"
	"math"
	"math/rand/v2"

	"move/internal/tensor"
)

// Set is a labelled image set held as 8-bit RGB, NHWC, in one slice.
type Set struct {
	Classes []string // class names; label i is Classes[i]
	H, W    int
	Pixels  []uint8  // len = Len()*H*W*3
	Labels  []int    // one per image
	Paths   []string // source file of each image ("" when not from a file)
}

// Len is the number of images.
func (s *Set) Len() int { return len(s.Labels) }

// Image returns image i's pixels (H*W*3 bytes, shared).
func (s *Set) Image(i int) []uint8 {
	n := s.H * s.W * 3
	return s.Pixels[i*n : (i+1)*n]
}

// Subset returns the images at the given indices, copied.
func (s *Set) Subset(idx []int) *Set {
	out := &Set{Classes: s.Classes, H: s.H, W: s.W}
	n := s.H * s.W * 3
	out.Pixels = make([]uint8, 0, len(idx)*n)
	for _, i := range idx {
		out.Pixels = append(out.Pixels, s.Image(i)...)
		out.Labels = append(out.Labels, s.Labels[i])
		if s.Paths != nil {
			out.Paths = append(out.Paths, s.Paths[i])
		}
	}
	if s.Paths == nil {
		out.Paths = nil
	}
	return out
}

// Concat returns the images of a then b in one set, copied. Both must share classes and size.
func Concat(a, b *Set) *Set {
	out := &Set{Classes: a.Classes, H: a.H, W: a.W}
	out.Pixels = append(append(make([]uint8, 0, len(a.Pixels)+len(b.Pixels)), a.Pixels...), b.Pixels...)
	out.Labels = append(append([]int(nil), a.Labels...), b.Labels...)
	if a.Paths != nil && b.Paths != nil {
		out.Paths = append(append([]string(nil), a.Paths...), b.Paths...)
	}
	return out
}

// PerClass returns the indices of the first n images of each class (all when n <= 0), in order.
func (s *Set) PerClass(n int) []int {
	count := make([]int, len(s.Classes))
	var idx []int
	for i, l := range s.Labels {
		if n <= 0 || count[l] < n {
			idx = append(idx, i)
			count[l]++
		}
	}
	return idx
}

// Normalization is the per-channel mean and standard deviation applied to pixels in [0, 1].
type Normalization struct {
	Mean [3]float32 `json:"mean"`
	Std  [3]float32 `json:"std"`
}

// CIFAR10Norm is the usual CIFAR-10 normalisation (the statistics of its training set).
var CIFAR10Norm = Normalization{Mean: [3]float32{0.4914, 0.4822, 0.4465}, Std: [3]float32{0.2470, 0.2435, 0.2616}}

// Stats computes the per-channel mean and standard deviation of a set.
func Stats(s *Set) Normalization {
	var sum, sq [3]float64
	for i, p := range s.Pixels {
		v := float64(p) / 255
		sum[i%3] += v
		sq[i%3] += v * v
	}
	n := float64(len(s.Pixels) / 3)
	var out Normalization
	for c := range 3 {
		m := sum[c] / n
		out.Mean[c] = float32(m)
		out.Std[c] = float32(max(1e-3, math.Sqrt(max(0, sq[c]/n-m*m))))
	}
	return out
}

// Augment says how training batches are perturbed.
type Augment struct {
	Pad  int  // random crop after zero-padding by Pad pixels (0: none)
	Flip bool // random horizontal flip
	// Jitter, when positive, scales each image's brightness, contrast and saturation by
	// factors drawn uniformly from [1-Jitter, 1+Jitter] (torchvision's ColorJitter).
	Jitter float32 `json:",omitempty"`
	// Blur, when positive, blurs each image with a Gaussian of standard deviation drawn
	// uniformly from [0, Blur] pixels.
	Blur float32 `json:",omitempty"`
}

// Standard is the CIFAR recipe: 4-pixel padding crop and horizontal flip.
var Standard = Augment{Pad: 4, Flip: true}

// Batch builds a normalised NHWC batch from the images at idx, augmented with rng when aug
// is not the zero value.
func Batch(s *Set, idx []int, norm Normalization, aug Augment, rng *rand.Rand) (*tensor.Tensor, []int) {
	h, w := s.H, s.W
	x := tensor.New(len(idx), h, w, 3)
	labels := make([]int, len(idx))
	var lut [3][256]float32
	for c := range 3 {
		for v := range 256 {
			lut[c][v] = (float32(v)/255 - norm.Mean[c]) / norm.Std[c]
		}
	}
	var zero [3]float32 // the value of a padded (black) pixel after normalisation
	for c := range 3 {
		zero[c] = lut[c][0]
	}
	for b, i := range idx {
		labels[b] = s.Labels[i]
		img := s.Image(i)
		dx, dy, flip := 0, 0, false
		if aug.Pad > 0 {
			dx, dy = rng.IntN(2*aug.Pad+1)-aug.Pad, rng.IntN(2*aug.Pad+1)-aug.Pad
		}
		if aug.Flip {
			flip = rng.IntN(2) == 1
		}
		out := x.Data[b*h*w*3 : (b+1)*h*w*3]
		for y := range h {
			sy := y + dy
			for xx := range w {
				sx := xx + dx
				if flip {
					sx = w - 1 - xx + dx
				}
				o := out[(y*w+xx)*3 : (y*w+xx)*3+3]
				if sy < 0 || sy >= h || sx < 0 || sx >= w {
					copy(o, zero[:])
					continue
				}
				p := img[(sy*w+sx)*3 : (sy*w+sx)*3+3]
				o[0], o[1], o[2] = lut[0][p[0]], lut[1][p[1]], lut[2][p[2]]
			}
		}
		if aug.Jitter > 0 || aug.Blur > 0 {
			strong(out, h, w, norm, aug, rng)
		}
	}
	return x, labels
}

// strong applies aug's colour jitter and blur to one normalised image in place: in [0, 1]
// pixel space, clipped there, then normalised again.
func strong(img []float32, h, w int, norm Normalization, aug Augment, rng *rand.Rand) {
	for i := range img {
		c := i % 3
		img[i] = img[i]*norm.Std[c] + norm.Mean[c]
	}
	if j := aug.Jitter; j > 0 {
		factor := func() float32 { return 1 - j + 2*j*rng.Float32() }
		b, ct, sat := factor(), factor(), factor()
		var mean float32
		for i := 0; i < len(img); i += 3 {
			mean += 0.299*img[i] + 0.587*img[i+1] + 0.114*img[i+2]
		}
		mean /= float32(h * w)
		for i := 0; i < len(img); i += 3 {
			px := img[i : i+3]
			for c := range 3 {
				px[c] = clip01(px[c] * b)
			}
			for c := range 3 {
				px[c] = clip01((px[c]-mean*b)*ct + mean*b)
			}
			g := 0.299*px[0] + 0.587*px[1] + 0.114*px[2]
			for c := range 3 {
				px[c] = clip01((px[c]-g)*sat + g)
			}
		}
	}
	if aug.Blur > 0 {
		if sigma := aug.Blur * rng.Float32(); sigma > 0.1 {
			GaussianBlur(img, h, w, sigma)
		}
	}
	for i := range img {
		c := i % 3
		img[i] = (img[i] - norm.Mean[c]) / norm.Std[c]
	}
}

func clip01(v float32) float32 { return min(1, max(0, v)) }

// GaussianBlur blurs an H x W x 3 float image in place with a separable Gaussian of standard
// deviation sigma pixels (radius ceil(2 sigma)), replicating the border pixels.
func GaussianBlur(img []float32, h, w int, sigma float32) {
	r := int(math.Ceil(2 * float64(sigma)))
	k := make([]float32, 2*r+1)
	var sum float32
	for i := range k {
		d := float64(i - r)
		k[i] = float32(math.Exp(-d * d / (2 * float64(sigma) * float64(sigma))))
		sum += k[i]
	}
	for i := range k {
		k[i] /= sum
	}
	tmp := make([]float32, len(img))
	for y := range h {
		for x := range w {
			for c := range 3 {
				var v float32
				for t, kv := range k {
					xx := min(w-1, max(0, x+t-r))
					v += kv * img[(y*w+xx)*3+c]
				}
				tmp[(y*w+x)*3+c] = v
			}
		}
	}
	for y := range h {
		for x := range w {
			for c := range 3 {
				var v float32
				for t, kv := range k {
					yy := min(h-1, max(0, y+t-r))
					v += kv * tmp[(yy*w+x)*3+c]
				}
				img[(y*w+x)*3+c] = v
			}
		}
	}
}

// Split divides [0, n) into a shuffled first part of size k and the rest, reproducibly.
func Split(n, k int, seed uint64) (first, rest []int) {
	if k < 0 || k > n {
		panic(fmt.Sprintf("data.Split: %d of %d", k, n))
	}
	p := rand.New(rand.NewPCG(seed, 0x73706c74)).Perm(n)
	return p[:k], p[k:]
}

// Package detect is what a thief who suspects a watermark runs on the stolen model to find it
// (the MOVE paper's section 7.3): STRIP (Gao et al. 2019), which flags inputs whose
// predictions stay confident when other images are superimposed on them — the mark of a
// backdoor trigger — and Neural Cleanse (Wang et al. 2019), which searches, for every class,
// the smallest mask and pattern that send clean images to that class: a class reachable by a
// much smaller patch than the others (anomaly index above 2) betrays a trigger. MOVE claims
// its external features pass both unseen, while a BadNets watermark does not.
package detect

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"move/internal/classifier"
	"move/internal/data"
	"move/internal/models"
	"move/internal/nn"
	"move/internal/tensor"
)

// STRIPResult is STRIP run on clean inputs and on inputs that carry the owner's mark (styled
// images for MOVE, triggered images for BadNets).
type STRIPResult struct {
	Overlays   int       `json:"overlays"`
	Clean      []float64 `json:"clean_entropy"`  // mean prediction entropy (bits) per clean input
	Marked     []float64 `json:"marked_entropy"` // per marked input
	Threshold  float64   `json:"threshold"`      // the clean entropies' 1st percentile (1% false rejections)
	Detected   float64   `json:"detected"`       // share of marked inputs below the threshold
	MeanClean  float64   `json:"mean_clean"`
	MeanMarked float64   `json:"mean_marked"`
}

// STRIP superimposes each input on overlays random images of pool (the two added, saturating
// at 255, as the original code's cv2.addWeighted(background, 1, overlay, 1, 0) does; a plain
// mean halves a trigger's contrast and hid it from STRIP on the test's small world), asks p,
// and records the mean entropy of its answers. The threshold is set so that 1%
// of the clean inputs would be rejected; Detected is the share of marked inputs it rejects.
func STRIP(p classifier.Prober, pool *data.Set, clean, marked [][]uint8, h, w, overlays int, seed uint64) (*STRIPResult, error) {
	if overlays < 1 {
		return nil, errors.New("STRIP needs at least one overlay")
	}
	if pool.Len() == 0 || len(clean) == 0 || len(marked) == 0 {
		return nil, errors.New("STRIP needs overlay images, clean inputs and marked inputs")
	}
	if pool.H != h || pool.W != w {
		return nil, fmt.Errorf("overlay images are %dx%d, inputs %dx%d", pool.H, pool.W, h, w)
	}
	rng := rand.New(rand.NewPCG(seed, 0x73747269))
	entropies := func(inputs [][]uint8) ([]float64, error) {
		out := make([]float64, len(inputs))
		for i, x := range inputs {
			batch := make([][]uint8, overlays)
			for k := range batch {
				o := pool.Image(rng.IntN(pool.Len()))
				b := make([]uint8, len(x))
				for j := range b {
					b[j] = uint8(min(255, int(x[j])+int(o[j])))
				}
				batch[k] = b
			}
			probs, err := p.Probs(batch, h, w)
			if err != nil {
				return nil, err
			}
			for _, pr := range probs {
				out[i] += Entropy(pr) / float64(overlays)
			}
		}
		return out, nil
	}
	res := &STRIPResult{Overlays: overlays}
	var err error
	if res.Clean, err = entropies(clean); err != nil {
		return nil, err
	}
	if res.Marked, err = entropies(marked); err != nil {
		return nil, err
	}
	sorted := slices.Sorted(slices.Values(res.Clean))
	res.Threshold = sorted[int(0.01*float64(len(sorted)))]
	for _, e := range res.Marked {
		if e < res.Threshold {
			res.Detected++
		}
	}
	res.Detected /= float64(len(res.Marked))
	res.MeanClean, res.MeanMarked = mean(res.Clean), mean(res.Marked)
	return res, nil
}

// Entropy is the Shannon entropy of a probability vector, in bits.
func Entropy(p []float32) float64 {
	var h float64
	for _, v := range p {
		if v > 0 {
			h -= float64(v) * math.Log2(float64(v))
		}
	}
	return h
}

func mean(x []float64) float64 {
	var s float64
	for _, v := range x {
		s += v
	}
	return s / float64(len(x))
}

// CleanseOptions configure Neural Cleanse.
type CleanseOptions struct {
	Steps  int     // optimisation steps per class (default 100)
	Batch  int     // clean images per step (default 32)
	LR     float64 // Adam's step size on the mask and pattern logits (default 0.1)
	Lambda float64 // initial weight of the mask's L1 norm (default 1e-3), adapted as Wang et al. do
	Seed   uint64
}

// CleanseResult is Neural Cleanse's search over every class.
type CleanseResult struct {
	Norms   []float64 `json:"mask_l1"`       // per class, the L1 norm of the smallest mask found that succeeds
	Success []float64 `json:"success"`       // per class, that mask's attack success on its batch
	Anomaly float64   `json:"anomaly_index"` // (median - min) / (1.4826 MAD) of the norms
	Class   int       `json:"class"`         // the class of the smallest norm
	Flagged bool      `json:"flagged"`       // anomaly index above 2: a trigger is suspected
}

// NeuralCleanse reverse-engineers, for each class, a mask m (H x W, in [0, 1]) and a pattern
// (H x W x 3, in [0, 1]) that send the clean images of set to that class when stamped as
// (1 - m) x + m pattern, minimising cross-entropy plus lambda |m|_1 with Adam. Lambda grows
// by 1.5 after 5 successive steps with attack success of at least 99% and shrinks
// otherwise, as in the original; the smallest mask that reached 99% success is kept.
func NeuralCleanse(m models.Model, norm data.Normalization, set *data.Set, opts CleanseOptions) (*CleanseResult, error) {
	if opts.Steps == 0 {
		opts.Steps = 100
	}
	if opts.Batch == 0 {
		opts.Batch = 32
	}
	if opts.LR == 0 {
		opts.LR = 0.1
	}
	if opts.Lambda == 0 {
		opts.Lambda = 1e-3
	}
	if set.Len() == 0 {
		return nil, errors.New("neural cleanse needs clean images")
	}
	k := m.Classes()
	h, w := set.H, set.W
	res := &CleanseResult{Norms: make([]float64, k), Success: make([]float64, k)}
	st := m.Store()
	st.Freeze(true)
	defer st.Freeze(false)
	for c := range k {
		rng := rand.New(rand.NewPCG(opts.Seed, uint64(c)+1))
		a := make([]float64, h*w)   // mask logits
		b := make([]float64, h*w*3) // pattern logits
		for i := range b {
			b[i] = rng.NormFloat64() * 0.1
		}
		ma, va := make([]float64, len(a)), make([]float64, len(a))
		mb, vb := make([]float64, len(b)), make([]float64, len(b))
		lambda := opts.Lambda
		best, bestSucc := math.Inf(1), 0.0
		lastL1, lastSucc := 0.0, 0.0
		streakUp, streakDown := 0, 0
		for step := range opts.Steps {
			idx := make([]int, opts.Batch)
			for i := range idx {
				idx[i] = rng.IntN(set.Len())
			}
			raw := make([]float64, opts.Batch*h*w*3)
			for bi, i := range idx {
				for o, v := range set.Image(i) {
					raw[bi*h*w*3+o] = float64(v) / 255
				}
			}
			_, ga, gb, l1, succ, err := cleanseObjective(m, norm, raw, opts.Batch, h, w, a, b, c, lambda)
			if err != nil {
				return nil, err
			}
			adam(a, ga, ma, va, opts.LR, step+1)
			adam(b, gb, mb, vb, opts.LR, step+1)
			lastL1, lastSucc = l1, succ
			if succ >= 0.99 && l1 < best {
				best, bestSucc = l1, succ
			}
			if succ >= 0.99 {
				streakUp, streakDown = streakUp+1, 0
			} else {
				streakUp, streakDown = 0, streakDown+1
			}
			if streakUp >= 5 {
				lambda, streakUp = lambda*1.5, 0
			}
			if streakDown >= 5 {
				lambda, streakDown = lambda/1.5, 0
			}
		}
		if math.IsInf(best, 1) { // never reached 99%: the last mask, and its success
			best, bestSucc = lastL1, lastSucc
		}
		res.Norms[c], res.Success[c] = best, bestSucc
	}
	res.Class, res.Anomaly = AnomalyIndex(res.Norms)
	res.Flagged = res.Anomaly > 2
	return res, nil
}

// cleanseObjective is Neural Cleanse's objective for class c on n images raw (pixels in
// [0, 1], NHWC), the mask logits a and pattern logits b: the mean cross-entropy of the
// stamped images (1 - m) x + m pattern, m = sigmoid(a), pattern = (tanh(b) + 1) / 2, plus
// lambda |m|_1. It returns the objective, its gradients with respect to a and b, the mask's
// L1 norm and the share of stamped images classified as c.
func cleanseObjective(m models.Model, norm data.Normalization, raw []float64, n, h, w int, a, b []float64, c int, lambda float64) (obj float64, ga, gb []float64, l1, succ float64, err error) {
	k := m.Classes()
	mask := make([]float64, h*w)
	pat := make([]float64, h*w*3)
	for i := range a {
		mask[i] = 1 / (1 + math.Exp(-a[i]))
		l1 += mask[i]
	}
	for i := range b {
		pat[i] = (math.Tanh(b[i]) + 1) / 2
	}
	x := tensor.New(n, h, w, 3)
	for bi := range n {
		for p := range h * w {
			for ch := range 3 {
				o := (bi*h*w+p)*3 + ch
				v := (1-mask[p])*raw[o] + mask[p]*pat[p*3+ch]
				x.Data[o] = float32((v - float64(norm.Mean[ch])) / float64(norm.Std[ch]))
			}
		}
	}
	labels := make([]int, n)
	for i := range labels {
		labels[i] = c
	}
	tp := nn.NewTape(true)
	xv := nn.Leaf(x)
	logits := m.Forward(tp, xv, false)
	loss := nn.CrossEntropy(tp, logits, labels)
	if err := tp.Backward(loss); err != nil {
		return 0, nil, nil, 0, 0, err
	}
	tp.Reset()
	for bi := range n {
		if classifier.Top1(logits.Value.Data[bi*k:(bi+1)*k]) == c {
			succ++
		}
	}
	succ /= float64(n)
	// The chain rule from the normalised input to the mask and pattern logits.
	ga, gb = make([]float64, len(a)), make([]float64, len(b))
	g := xv.Grad.Data
	for bi := range n {
		for p := range h * w {
			for ch := range 3 {
				o := (bi*h*w+p)*3 + ch
				gv := float64(g[o]) / float64(norm.Std[ch]) // dL/dv, v the stamped pixel
				ga[p] += gv * (pat[p*3+ch] - raw[o])
				gb[p*3+ch] += gv * mask[p]
			}
		}
	}
	for i := range a {
		ga[i] = (ga[i] + lambda) * mask[i] * (1 - mask[i])
	}
	for i := range b {
		t := math.Tanh(b[i])
		gb[i] *= (1 - t*t) / 2
	}
	return float64(loss.Value.Data[0]) + lambda*l1, ga, gb, l1, succ, nil
}

// AnomalyIndex is Neural Cleanse's outlier measure of the smallest of norms: its distance
// below the median in units of the median absolute deviation (times 1.4826, the normal
// consistency constant), and which one it is.
func AnomalyIndex(norms []float64) (class int, index float64) {
	med := median(norms)
	dev := make([]float64, len(norms))
	for i, v := range norms {
		dev[i] = math.Abs(v - med)
	}
	mad := 1.4826 * median(dev)
	class = 0
	for i, v := range norms {
		if v < norms[class] {
			class = i
		}
	}
	if mad == 0 {
		return class, 0
	}
	return class, (med - norms[class]) / mad
}

func median(x []float64) float64 {
	s := slices.Sorted(slices.Values(x))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// adam takes one Adam step (beta 0.9, 0.999) on x with gradient g.
func adam(x, g, m, v []float64, lr float64, t int) {
	const b1, b2, eps = 0.9, 0.999, 1e-8
	c1, c2 := 1-math.Pow(b1, float64(t)), 1-math.Pow(b2, float64(t))
	for i := range x {
		m[i] = b1*m[i] + (1-b1)*g[i]
		v[i] = b2*v[i] + (1-b2)*g[i]*g[i]
		x[i] -= lr * (m[i] / c1) / (math.Sqrt(v[i]/c2) + eps)
	}
}

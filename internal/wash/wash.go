// Package wash holds what a thief who has read the MOVE paper does to a stolen model before
// serving it, hoping to wash the external features out: magnitude pruning, fine-pruning
// (Liu et al., RAID 2018), weight quantisation, and served models that transform each query
// image (JPEG compression, blur) or average their answers over the five augmentations the
// black-box features use, so that the prediction differences those features read vanish.
//
// The weight operations change a model in place and return a Mask when they zero weights,
// so that a fine-tuning that follows can keep them zero (Mask.Apply after each step). The
// input transforms wrap any classifier.Prober, local or remote; move serve puts them in front
// of a served model.
package wash

import (
	"fmt"
	"math"
	"slices"

	"move/internal/data"
	"move/internal/models"
	"move/internal/nn"
)

// Mask is the set of weights a pruning zeroed; Apply zeroes them again.
type Mask struct {
	vars  []*nn.Var
	zeros [][]int // per var, the indices held at zero
}

// Apply sets every masked weight to zero (after an optimiser step, say).
func (m *Mask) Apply() {
	if m == nil {
		return
	}
	for k, v := range m.vars {
		for _, i := range m.zeros[k] {
			v.Value.Data[i] = 0
		}
	}
}

// Count is the number of masked weights.
func (m *Mask) Count() int {
	n := 0
	for _, z := range m.zeros {
		n += len(z)
	}
	return n
}

// Prunable are a model's weight tensors that pruning and quantisation act on: the
// convolution and linear weights (rank 2 or more), not biases or batch-norm parameters.
func Prunable(m models.Model) []*nn.Var {
	var out []*nn.Var
	for _, p := range m.Store().Params() {
		if len(p.Value.Shape) >= 2 {
			out = append(out, p)
		}
	}
	return out
}

// Prune zeroes, in each prunable tensor of m, the floor(fraction x size) weights of smallest
// magnitude (per-layer magnitude pruning; ties broken by position), and returns their mask.
func Prune(m models.Model, fraction float64) (*Mask, error) {
	if !(fraction >= 0 && fraction < 1) {
		return nil, fmt.Errorf("pruning fraction %g: want [0, 1)", fraction)
	}
	ws := Prunable(m)
	if len(ws) == 0 {
		return nil, fmt.Errorf("the %s model has no weights to prune", m.Arch())
	}
	mask := &Mask{}
	for _, v := range ws {
		d := v.Value.Data
		k := int(fraction * float64(len(d)))
		idx := make([]int, len(d))
		for i := range idx {
			idx[i] = i
		}
		slices.SortStableFunc(idx, func(a, b int) int {
			x, y := math.Abs(float64(d[a])), math.Abs(float64(d[b]))
			switch {
			case x < y:
				return -1
			case x > y:
				return 1
			}
			return 0
		})
		zeros := slices.Clone(idx[:k])
		slices.Sort(zeros)
		mask.vars = append(mask.vars, v)
		mask.zeros = append(mask.zeros, zeros)
	}
	mask.Apply()
	return mask, nil
}

// Quantize rounds each prunable tensor of m to 2^bits levels spaced evenly between its
// minimum and maximum (per-tensor affine quantisation, as int8 post-training quantisation
// stores weights), and stores the dequantised values: each tensor then takes at most 2^bits
// distinct values. Zero stays exactly zero when the range holds it.
func Quantize(m models.Model, bits int) error {
	if bits < 1 || bits > 16 {
		return fmt.Errorf("quantisation to %d bits: want 1 to 16", bits)
	}
	levels := float64(int(1)<<bits - 1)
	for _, v := range Prunable(m) {
		d := v.Value.Data
		lo, hi := float64(slices.Min(d)), float64(slices.Max(d))
		if hi == lo {
			continue
		}
		scale := (hi - lo) / levels
		zero := math.Round(-lo / scale) // the level that holds 0 (when lo <= 0 <= hi)
		for i, x := range d {
			q := math.Round(float64(x)/scale) + zero
			q = min(levels, max(0, q))
			d[i] = float32((q - zero) * scale)
		}
	}
	return nil
}

// Activity is each pooled feature's mean activation over set (the features the model's
// linear head reads, in evaluation mode): what fine-pruning ranks channels by.
func Activity(e models.Embedder, set *data.Set, norm data.Normalization) []float64 {
	tp := nn.NewTape(false)
	var sum []float64
	const chunk = 128
	for s := 0; s < set.Len(); s += chunk {
		idx := make([]int, 0, chunk)
		for i := s; i < min(set.Len(), s+chunk); i++ {
			idx = append(idx, i)
		}
		x, _ := data.Batch(set, idx, norm, data.Augment{}, nil)
		f := e.Embed(tp, nn.Const(x), false).Value
		c := f.Dim(1)
		if sum == nil {
			sum = make([]float64, c)
		}
		for i := range len(idx) {
			for j := range c {
				sum[j] += float64(f.Data[i*c+j])
			}
		}
		tp.Reset()
	}
	for j := range sum {
		sum[j] /= float64(set.Len())
	}
	return sum
}

// FinePrune removes the floor(fraction x C) channels of the last layer least active on the
// clean images of set (Liu et al.'s fine-pruning, before its fine-tuning): their columns of
// the linear head are zeroed, which removes the channels from the model's function. It
// returns the mask (keep it applied while fine-tuning) and the pruned channels.
func FinePrune(m models.Model, set *data.Set, norm data.Normalization, fraction float64) (*Mask, []int, error) {
	e, ok := m.(models.Embedder)
	if !ok {
		return nil, nil, fmt.Errorf("fine-pruning reads the features of the last layer: the %s model does not expose them", m.Arch())
	}
	if !(fraction >= 0 && fraction < 1) {
		return nil, nil, fmt.Errorf("fine-pruning fraction %g: want [0, 1)", fraction)
	}
	if set == nil || set.Len() == 0 {
		return nil, nil, fmt.Errorf("fine-pruning needs clean images to measure activity")
	}
	act := Activity(e, set, norm)
	order := make([]int, len(act))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case act[a] < act[b]:
			return -1
		case act[a] > act[b]:
			return 1
		}
		return 0
	})
	pruned := slices.Clone(order[:int(fraction*float64(len(act)))])
	slices.Sort(pruned)
	w := e.Head().W // [K][C]
	k, c := w.Value.Dim(0), w.Value.Dim(1)
	if c != len(act) {
		return nil, nil, fmt.Errorf("the head reads %d features, the model pools %d", c, len(act))
	}
	var zeros []int
	for row := range k {
		for _, ch := range pruned {
			zeros = append(zeros, row*c+ch)
		}
	}
	slices.Sort(zeros)
	mask := &Mask{vars: []*nn.Var{w}, zeros: [][]int{zeros}}
	mask.Apply()
	return mask, pruned, nil
}

// Sparsity is the fraction of exactly-zero values among the prunable weights of m.
func Sparsity(m models.Model) float64 {
	n, z := 0, 0
	for _, v := range Prunable(m) {
		for _, x := range v.Value.Data {
			if x == 0 {
				z++
			}
		}
		n += v.Value.Len()
	}
	if n == 0 {
		return 0
	}
	return float64(z) / float64(n)
}

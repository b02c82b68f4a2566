package wash

import (
	"math"
	"slices"
	"strings"
	"testing"

	"move/internal/classifier"
	"move/internal/data"
	"move/internal/features"
	"move/internal/models"
	"move/internal/nn"
	"move/internal/tensor"
)

func newModel(t *testing.T, arch string, seed uint64) models.Model {
	t.Helper()
	m, err := models.New(arch, 4, seed)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Pruning zeroes exactly floor(fraction x size) weights of each layer, and the smallest ones;
// biases and batch norms are untouched; the mask zeroes them again after a change.
func TestPrune(t *testing.T) {
	m := newModel(t, "resnet20", 1)
	before := map[string][]float32{}
	for _, n := range m.Store().Names() {
		before[n] = slices.Clone(m.Store().Tensor(n).Data)
	}
	mask, err := Prune(m, 0.3)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, n := range m.Store().Names() {
		d, old := m.Store().Tensor(n).Data, before[n]
		zeroed, largestZeroed, smallestKept := 0, 0.0, math.Inf(1)
		for i := range d {
			if d[i] == 0 && old[i] != 0 {
				zeroed++
				largestZeroed = max(largestZeroed, math.Abs(float64(old[i])))
			} else if d[i] != old[i] {
				t.Fatalf("%s[%d] changed from %g to %g", n, i, old[i], d[i])
			} else {
				smallestKept = min(smallestKept, math.Abs(float64(d[i])))
			}
		}
		if len(m.Store().Tensor(n).Shape) < 2 {
			if zeroed != 0 {
				t.Errorf("%s (not a weight tensor) lost %d values", n, zeroed)
			}
			continue
		}
		if want := int(0.3 * float64(len(d))); zeroed != want {
			t.Errorf("%s: %d of %d zeroed, want %d", n, zeroed, len(d), want)
		}
		if largestZeroed > smallestKept {
			t.Errorf("%s: zeroed |w| = %g but kept |w| = %g", n, largestZeroed, smallestKept)
		}
		total += zeroed
	}
	if mask.Count() != total {
		t.Errorf("mask holds %d weights, %d were zeroed", mask.Count(), total)
	}
	if s := Sparsity(m); math.Abs(s-0.3) > 0.001 {
		t.Errorf("sparsity %.4f, want 0.3", s)
	}
	for _, v := range Prunable(m) {
		for i := range v.Value.Data {
			v.Value.Data[i] += 0.5 // an optimiser step regrows everything
		}
	}
	mask.Apply()
	if s := Sparsity(m); math.Abs(s-0.3) > 0.001 {
		t.Errorf("after Apply, sparsity %.4f, want 0.3", s)
	}
	if _, err := Prune(m, 1); err == nil {
		t.Error("pruning everything was accepted")
	}
}

// Quantisation leaves at most 256 values per tensor, each within half a step of the original.
func TestQuantize(t *testing.T) {
	m := newModel(t, "resnet20", 2)
	before := map[*nn.Var][]float32{}
	for _, v := range Prunable(m) {
		before[v] = slices.Clone(v.Value.Data)
	}
	if err := Quantize(m, 8); err != nil {
		t.Fatal(err)
	}
	for _, v := range Prunable(m) {
		old := before[v]
		lo, hi := slices.Min(old), slices.Max(old)
		step := float64(hi-lo) / 255
		if n := distinct(v.Value); n > 256 || n < 10 {
			t.Errorf("a %v tensor takes %d distinct values after 8-bit quantisation", v.Value.Shape, n)
		}
		for i, x := range v.Value.Data {
			if math.Abs(float64(x-old[i])) > step/2+1e-6 {
				t.Fatalf("value %g quantised to %g, step %g", old[i], x, step)
			}
		}
	}
	if err := Quantize(m, 0); err == nil {
		t.Error("0 bits accepted")
	}
}

func distinct(t *tensor.Tensor) int {
	seen := map[float32]bool{}
	for _, x := range t.Data {
		seen[x] = true
	}
	return len(seen)
}

// Fine-pruning removes the least active channels: the pruned model's logits are the head
// applied to the features with those channels set to zero.
func TestFinePrune(t *testing.T) {
	for _, arch := range []string{"resnet20", "wrn16-1", "vgg11-bn"} {
		m := newModel(t, arch, 3)
		set := data.Synthetic(40, 4, 16, 3)
		norm := data.Stats(set)
		e := m.(models.Embedder)
		act := Activity(e, set, norm)
		mask, pruned, err := FinePrune(m, set, norm, 0.5)
		if err != nil {
			t.Fatal(err)
		}
		if len(pruned) != len(act)/2 || mask.Count() != len(pruned)*4 {
			t.Fatalf("%s: %d of %d channels pruned, mask %d", arch, len(pruned), len(act), mask.Count())
		}
		maxPruned, minKept := math.Inf(-1), math.Inf(1)
		for c, a := range act {
			if slices.Contains(pruned, c) {
				maxPruned = max(maxPruned, a)
			} else {
				minKept = min(minKept, a)
			}
		}
		if maxPruned > minKept {
			t.Errorf("%s: pruned a channel of activity %g, kept one of %g", arch, maxPruned, minKept)
		}
		x, _ := data.Batch(set, []int{0, 1, 2}, norm, data.Augment{}, nil)
		feat := e.Embed(nil, nn.Const(x), false).Value
		c := feat.Dim(1)
		for i := range 3 {
			for _, p := range pruned {
				feat.Data[i*c+p] = 0
			}
		}
		// With the pruned columns zero, the head gives the same logits either way.
		want := e.Head().Apply(nil, nn.Const(feat)).Value
		got := m.Forward(nil, nn.Const(x), false).Value
		for i := range got.Data {
			if math.Abs(float64(got.Data[i]-want.Data[i])) > 1e-4 {
				t.Fatalf("%s: logit %d is %g, want %g", arch, i, got.Data[i], want.Data[i])
			}
		}
	}
}

// A local classifier that records what it was asked.
type recorder struct {
	inner classifier.Prober
	seen  [][]uint8
}

func (r *recorder) Probs(imgs [][]uint8, h, w int) ([][]float32, error) {
	r.seen = append(r.seen, imgs...)
	return r.inner.Probs(imgs, h, w)
}

func TestInputTransforms(t *testing.T) {
	m := newModel(t, "resnet20", 4)
	set := data.Synthetic(6, 4, 16, 5)
	local := classifier.Local(m, data.Stats(set), 16)
	var imgs [][]uint8
	for i := range set.Len() {
		imgs = append(imgs, set.Image(i))
	}
	// augavg answers the mean over the five augmentations, computed here independently.
	avg, err := NewInput(local, "augavg")
	if err != nil {
		t.Fatal(err)
	}
	got, err := avg.Probs(imgs, 16, 16)
	if err != nil {
		t.Fatal(err)
	}
	for i, img := range imgs {
		want := make([]float64, 4)
		for k := range features.Augmentations {
			p, _ := local.Probs([][]uint8{features.Augment(img, 16, 16, k)}, 16, 16)
			for j := range want {
				want[j] += float64(p[0][j]) / 5
			}
		}
		for j := range want {
			if math.Abs(float64(got[i][j])-want[j]) > 1e-5 {
				t.Fatalf("image %d class %d: %g, want the mean %g", i, j, got[i][j], want[j])
			}
		}
	}
	// jpeg and blur change what the model sees, a little; a flat image survives both.
	for _, spec := range []string{"jpeg:30", "blur:1"} {
		rec := &recorder{inner: local}
		in, err := NewInput(rec, spec)
		if err != nil {
			t.Fatal(err)
		}
		if in.String() != spec {
			t.Errorf("%s reads back as %s", spec, in)
		}
		if _, err := in.Probs(imgs, 16, 16); err != nil {
			t.Fatal(err)
		}
		var diff float64
		for i, img := range imgs {
			for j := range img {
				diff += math.Abs(float64(img[j]) - float64(rec.seen[i][j]))
			}
		}
		diff /= float64(len(imgs) * len(imgs[0]))
		if diff < 0.5 || diff > 40 {
			t.Errorf("%s: mean change of %.2f per pixel value", spec, diff)
		}
		flat := make([]uint8, 16*16*3)
		for j := range flat {
			flat[j] = []uint8{200, 100, 50}[j%3]
		}
		rec.seen = nil
		if _, err := in.Probs([][]uint8{flat}, 16, 16); err != nil {
			t.Fatal(err)
		}
		for j, v := range rec.seen[0] {
			if d := int(v) - int(flat[j]); d < -2 || d > 2 {
				t.Fatalf("%s changed a flat image's value %d to %d", spec, flat[j], v)
			}
		}
	}
	for _, bad := range []string{"jpeg", "jpeg:0", "jpeg:50.5", "blur:0", "blur:x", "augavg:2", "sharpen:1"} {
		if _, err := NewInput(local, bad); err == nil {
			t.Errorf("%q accepted", bad)
		} else if !strings.Contains(err.Error(), bad) {
			t.Errorf("%q: the error does not name it: %v", bad, err)
		}
	}
}

package verify

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"move/internal/classifier"
	"move/internal/watermark"
)

// gainProber answers by the kind of image it is shown (every pixel's red byte: 0 original, 1
// owner style, 2 and 3 control styles) and the key sample (the green byte): the true class with
// probability styled[k] on sample k's owner-styled image, base on the others. The last pixel
// keeps its bytes under every augmentation (features.Augment); the first pixel's blue byte is 1
// only in the image as it is (a flip moves it, a shift blackens it). With plainOnly the prober
// gains on the image as it is and nowhere else.
type gainProber struct {
	styled    []float64
	base      float64
	labels    []int
	k         int // classes
	flat      bool
	plainOnly bool
	wrongMod  int // when > 0, answers the original of every wrongMod-th sample with another class
}

func (g gainProber) Probs(imgs [][]uint8, h, w int) ([][]float32, error) {
	out := make([][]float32, len(imgs))
	for i, im := range imgs {
		kind, s := im[len(im)-3], int(im[len(im)-2])
		p := g.base
		if kind == 1 && (!g.plainOnly || im[2] == 1) {
			p = g.styled[s]
		}
		row := make([]float32, g.k)
		y := g.labels[s]
		if g.flat {
			y = 0 // answers class 0 whatever it is shown
		}
		if kind == 0 && g.wrongMod > 0 && s%g.wrongMod == 0 {
			y = (y + 1) % g.k // wrong on this original; its gains are untouched
		}
		for j := range row {
			row[j] = float32((1 - p) / float64(g.k-1))
		}
		row[y] = float32(p)
		out[i] = row
	}
	return out, nil
}

// gainModel returns a prober over three classes that answers the true class with probability
// styled[k] on sample k's owner-styled image and 0.5 on every other image.
func gainModel(labels []int) func(styled []float64) classifier.Model {
	return func(styled []float64) classifier.Model {
		return classifier.Model{Remote: gainProber{styled: styled, base: 0.5, labels: labels, k: 3}}
	}
}

func gainPairs(n int) ([]watermark.Pair, []int) {
	img := func(kind, s int) []uint8 {
		b := make([]uint8, 4*4*3)
		for i := 0; i < len(b); i += 3 {
			b[i], b[i+1] = uint8(kind), uint8(s)
			if i%(4*3) == 0 {
				b[i+2] = 1 // the first column
			}
		}
		return b
	}
	pairs := make([]watermark.Pair, n)
	labels := make([]int, n)
	for s := range n {
		labels[s] = s % 3
		pairs[s] = watermark.Pair{Orig: img(0, s), Styled: img(1, s), Controls: [][]uint8{img(2, s), img(3, s)}, H: 4, W: 4, Label: labels[s]}
	}
	return pairs, labels
}

// The ranking follows the victim's gain beyond the benign models', the test reads its top m
// images only, flags a model that gains there as the victim does, clears one that gains as the
// reference does, and calls a model that answers one class whatever it sees inconclusive.
func TestGainTopRanksAndTests(t *testing.T) {
	const n = 40
	pairs, labels := gainPairs(n)
	// As in a real key, only some samples have control versions: here not the first two.
	pairs[0].Controls, pairs[1].Controls = nil, nil
	victim, benign, ref := make([]float64, n), make([]float64, n), make([]float64, n)
	for s := range n {
		// The victim's gain grows with s, except that the benign model gains too on even
		// samples: there the victim's gain is not specific, and the ranking must say so.
		victim[s] = 0.5 + 0.45*float64(s)/n
		benign[s], ref[s] = 0.5, 0.5+0.01*float64(s%2)
		if s%2 == 0 {
			benign[s] = victim[s]
		}
	}
	model := func(styled []float64, flat bool) classifier.Model {
		return classifier.Model{Remote: gainProber{styled: styled, base: 0.5, labels: labels, k: 3, flat: flat}}
	}
	c, err := GainTopRecord(GainTopRankers{Victim: model(victim, false), Benign: []classifier.Model{model(benign, false)}}, pairs, 0)
	if err != nil {
		t.Fatal(err)
	}
	if c.Info.Views != GainTopAugs {
		t.Fatalf("recorded %d augmentations, want %d", c.Info.Views, GainTopAugs)
	}
	var want []int
	for s := n - 1; s >= 2; s -= 2 { // the odd samples by falling gain, then the even ones
		want = append(want, s)
	}
	if len(c.Info.HeldOutIdx) != n-2 || slices.Contains(c.Info.HeldOutIdx, 0) || slices.Contains(c.Info.HeldOutIdx, 1) {
		t.Fatalf("ranked %v: want the %d samples with controls", c.Info.HeldOutIdx, n-2)
	}
	if got := c.Info.HeldOutIdx[:len(want)]; !slices.Equal(got, want) {
		t.Fatalf("ranking starts %v, want %v", got, want)
	}
	if c.Info.Controls != 2 {
		t.Fatalf("controls %d", c.Info.Controls)
	}
	// A copy of the victim, against a reference that gains almost nothing.
	res, err := GainTop(c, model(victim, false), model(ref, false), pairs, Options{M: 10})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Stolen || res.M != 10 || !slices.Equal(res.Samples, want[:10]) {
		t.Fatalf("the victim: verdict %q p %g m %d samples %v", res.Verdict, res.P, res.M, res.Samples)
	}
	// The mean difference on the top 10 (samples 39, 37, ..., 21) is the victim's gain there.
	var d float64
	for _, s := range want[:10] {
		d += (victim[s] - 0.5) - (ref[s] - 0.5)
	}
	if math.Abs(res.DeltaMu-d/10) > 1e-6 {
		t.Errorf("delta-mu %g, want %g", res.DeltaMu, d/10)
	}
	// A model that gains where the benign model does, not where the victim's gain is its own.
	res, err = GainTop(c, model(benign, false), model(ref, false), pairs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stolen || res.P < 0.5 {
		t.Errorf("a benign-like model: verdict %q p %g", res.Verdict, res.P)
	}
	res, err = GainTop(c, model(victim, true), model(ref, false), pairs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Verdict != Inconclusive {
		t.Errorf("a model answering one class: verdict %q", res.Verdict)
	}
	// A key without control styles cannot be ranked.
	bare := append([]watermark.Pair(nil), pairs...)
	for i := range bare {
		bare[i].Controls = nil
	}
	if _, err := GainTopRecord(GainTopRankers{Victim: model(victim, false), Benign: []classifier.Model{model(benign, false)}}, bare, 0); err == nil {
		t.Error("a key without controls: no error")
	}
}

// Positives join the victim and negatives the benign models: the ranking follows the mean
// gain of the first beyond the mean gain of the second.
func TestGainTopPositivesAndNegatives(t *testing.T) {
	const n = 40
	pairs, labels := gainPairs(n)
	model := gainModel(labels)
	victim, benign, pos, neg := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
	for s := range n {
		// The victim gains 0.3 everywhere: alone it ranks nothing. The positive's gain grows
		// with s; the negative gains as much as the positive on even samples, nothing on odd.
		victim[s], benign[s], pos[s], neg[s] = 0.8, 0.5, 0.5+0.4*float64(s)/n, 0.5
		if s%2 == 0 {
			neg[s] = pos[s]
		}
	}
	if c, err := GainTopRecord(GainTopRankers{Victim: model(victim), Positives: []classifier.Model{model(pos)}, Benign: []classifier.Model{model(benign)}}, pairs, 1); err != nil || len(c.Info.PositivesKept) != 0 || c.Info.PositiveP[0] != 1 {
		t.Errorf("a positive with one benign model (no model left to gate it against): %v, want it dropped", err)
	}
	c, err := GainTopRecord(GainTopRankers{Victim: model(victim), Positives: []classifier.Model{model(pos)}, Benign: []classifier.Model{model(benign), model(benign)}}, pairs, 1)
	if err != nil {
		t.Fatal(err)
	}
	var want []int
	for s := n - 1; s >= 0; s-- {
		want = append(want, s)
	}
	if !slices.Equal(c.Info.HeldOutIdx, want) {
		t.Errorf("with a positive: ranking %v, want %v", c.Info.HeldOutIdx, want)
	}
	c, err = GainTopRecord(GainTopRankers{Victim: model(victim), Positives: []classifier.Model{model(pos)}, Benign: []classifier.Model{model(benign)},
		Negatives: []classifier.Model{model(neg)}}, pairs, 1)
	if err != nil {
		t.Fatal(err)
	}
	want = want[:0]
	for s := n - 1; s >= 1; s -= 2 { // odd samples by falling gain; the even ones tie behind
		want = append(want, s)
	}
	if got := c.Info.HeldOutIdx[:n/2]; !slices.Equal(got, want) {
		t.Errorf("with a negative: ranking starts %v, want %v", got, want)
	}
}

// A positive that gains nothing where the victim gains does not rank: the ranking is the
// victim's alone, and the meta file says which positives were kept and their gate p-values.
func TestGainTopPositiveGate(t *testing.T) {
	const n = 40
	pairs, labels := gainPairs(n)
	model := gainModel(labels)
	victim, benign, flat, follow := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
	for s := range n {
		// The victim's gain grows with s; "follow" gains like it on the odd samples and more on
		// the even ones (so that it reorders them); "flat" gains nothing.
		victim[s], benign[s], flat[s] = 0.5+0.4*float64(s)/n, 0.5, 0.5
		follow[s] = victim[s]
		if s%2 == 0 {
			follow[s] = 0.95
		}
	}
	two := []classifier.Model{model(benign), model(benign)}
	alone, err := GainTopRecord(GainTopRankers{Victim: model(victim), Benign: two}, pairs, 1)
	if err != nil {
		t.Fatal(err)
	}
	c, err := GainTopRecord(GainTopRankers{Victim: model(victim), Positives: []classifier.Model{model(flat), model(follow)}, Benign: two}, pairs, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Info.PositivesKept, []int{1}) || len(c.Info.PositiveP) != 2 || c.Info.PositiveP[0] < 0.5 || c.Info.PositiveP[1] > 1e-6 {
		t.Fatalf("kept %v with gate p-values %v, want [1] (the follower), the flat one's p large", c.Info.PositivesKept, c.Info.PositiveP)
	}
	if slices.Equal(c.Info.HeldOutIdx, alone.Info.HeldOutIdx) {
		t.Error("the follower passed the gate but did not change the ranking")
	}
	// Only the flat positive: the victim's ranking, unchanged.
	c, err = GainTopRecord(GainTopRankers{Victim: model(victim), Positives: []classifier.Model{model(flat)}, Benign: two}, pairs, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Info.PositivesKept) != 0 || !slices.Equal(c.Info.HeldOutIdx, alone.Info.HeldOutIdx) {
		t.Errorf("a flat positive: kept %v, ranking %v, want none and the victim's %v", c.Info.PositivesKept, c.Info.HeldOutIdx[:10], alone.Info.HeldOutIdx[:10])
	}
}

// A reference that answers the key's originals much worse than the suspect is no null: the
// victim tested against it is inconclusive, and says why; within the allowed shortfall, or
// with the check turned off, it is stolen as against a good reference.
func TestGainTopWeakReference(t *testing.T) {
	const n = 40
	pairs, labels := gainPairs(n)
	victim, benign := rampGains(n)
	model := func(styled []float64, wrongMod int) classifier.Model {
		return classifier.Model{Remote: gainProber{styled: styled, base: 0.5, labels: labels, k: 3, wrongMod: wrongMod}}
	}
	c, err := GainTopRecord(GainTopRankers{Victim: model(victim, 0), Benign: []classifier.Model{model(benign, 0)}}, pairs, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct {
		wrongMod  int // the reference is wrong on every wrongMod-th original
		shortfall float64
		verdict   string
	}{
		{0, 0, Stolen},
		{10, 0, Stolen},          // 1 of the top 10 (samples 39..30) wrong: 10 points short, allowed
		{3, 0, Inconclusive},     // 4 of 10 wrong: 40 points short
		{3, 0.45, Stolen},        // allowed by the owner
		{3, 1, Stolen},           // the check off
		{2, 0.45, Inconclusive},  // 50 points short
		{10, 0.05, Inconclusive}, // 10 points, 5 allowed
	} {
		res, err := GainTop(c, model(victim, 0), model(benign, x.wrongMod), pairs, Options{RefShortfall: x.shortfall})
		if err != nil {
			t.Fatal(err)
		}
		wrong := 0 // a served suspect's accuracy is counted on the m images it was tested on
		for _, s := range res.Samples {
			if x.wrongMod > 0 && s%x.wrongMod == 0 {
				wrong++
			}
		}
		if want := 1 - float64(wrong)/float64(len(res.Samples)); math.Abs(res.RefKeyAccuracy-want) > 1e-12 || res.KeyAccuracy != 1 {
			t.Errorf("reference wrong on every %d-th: key accuracy %g (suspect %g), want %g", x.wrongMod, res.RefKeyAccuracy, res.KeyAccuracy, want)
		}
		if res.Verdict != x.verdict || (res.Verdict == Inconclusive) != (res.Why != "") || res.Stolen != (x.verdict == Stolen) {
			t.Errorf("reference wrong on every %d-th, shortfall %g allowed: verdict %q (%s), want %q", x.wrongMod, x.shortfall, res.Verdict, res.Why, x.verdict)
		}
	}
	if _, err := GainTop(c, model(victim, 0), model(benign, 0), pairs, Options{RefShortfall: 1.5}); err == nil {
		t.Error("a shortfall of 1.5 accepted")
	}
	// Weak models do not rank: a benign model or a negative wrong on a third of the originals.
	for _, r := range []GainTopRankers{
		{Victim: model(victim, 0), Benign: []classifier.Model{model(benign, 3)}},
		{Victim: model(victim, 0), Benign: []classifier.Model{model(benign, 0)}, Negatives: []classifier.Model{model(benign, 3)}},
	} {
		if _, err := GainTopRecord(r, pairs, 0); !errors.Is(err, ErrWeakRanking) {
			t.Errorf("a weak ranker: error %v", err)
		}
	}
	if _, err := GainTopRecord(GainTopRankers{Victim: model(victim, 0), Benign: []classifier.Model{model(benign, 10)}}, pairs, 0); err != nil {
		t.Errorf("a benign model 10 points short: %v", err)
	}
}

// A gain is the mean over the recorded augmentations: a model that gains on the images as they
// are and on none of their augmented versions shows a fifth of its gain over five, all of it
// over one (a meta file without augmentations reads the images alone).
func TestGainTopAveragesAugmentations(t *testing.T) {
	const n = 12
	pairs, labels := gainPairs(n)
	victim, flat := make([]float64, n), make([]float64, n)
	for s := range n {
		victim[s], flat[s] = 0.9-0.01*float64(s), 0.5
	}
	model := func(styled []float64, plainOnly bool) classifier.Model {
		return classifier.Model{Remote: gainProber{styled: styled, base: 0.5, labels: labels, k: 3, plainOnly: plainOnly}}
	}
	for _, augs := range []int{1, 3, 5} {
		c, err := GainTopRecord(GainTopRankers{Victim: model(victim, false), Benign: []classifier.Model{model(flat, false)}}, pairs, augs)
		if err != nil {
			t.Fatal(err)
		}
		if augs == 1 {
			c.Info.Views = 0 // as written before the augmentations
		}
		res, err := GainTop(c, model(victim, true), model(flat, false), pairs, Options{M: 4})
		if err != nil {
			t.Fatal(err)
		}
		var want float64
		for _, s := range res.Samples {
			want += (victim[s] - 0.5) / float64(augs) / 4
		}
		if math.Abs(res.DeltaMu-want) > 1e-6 {
			t.Errorf("%d augmentations: delta-mu %g, want %g", augs, res.DeltaMu, want)
		}
	}
	if _, err := GainTopRecord(GainTopRankers{Victim: model(victim, false), Benign: []classifier.Model{model(flat, false)}}, pairs, 6); err == nil {
		t.Error("six augmentations: no error")
	}
}

// The gate reads each positive against a benign model that did not choose the images: a
// positive whose gains are noise, like the benign models', does not pass, although against
// the models that chose the images (where they gain least, by selection) it would.
func TestGainTopGateHeldOut(t *testing.T) {
	const n = 250
	pairs, labels := gainPairs(n)
	model := gainModel(labels)
	noise := func(seed uint64) []float64 {
		r := rand.New(rand.NewPCG(seed, 1))
		out := make([]float64, n)
		for s := range out {
			out[s] = 0.5 + 0.3*r.Float64()
		}
		return out
	}
	victim := make([]float64, n)
	for s := range victim {
		victim[s] = 0.7
	}
	benign := []classifier.Model{model(noise(1)), model(noise(2)), model(noise(3))}
	c, err := GainTopRecord(GainTopRankers{Victim: model(victim), Positives: []classifier.Model{model(noise(4))}, Benign: benign}, pairs, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Info.PositivesKept) != 0 || c.Info.PositiveP[0] < PositiveGateAlpha {
		t.Errorf("a positive of noise passed the gate: p %v, kept %v", c.Info.PositiveP, c.Info.PositivesKept)
	}
	// Against the models that chose the images it would have passed: the selection effect the
	// held-out reading removes is there.
	gp, gb := noise(4), make([]float64, n)
	for _, k := range []uint64{1, 2, 3} {
		for s, x := range noise(k) {
			gb[s] += (x - 0.5) / 3
		}
	}
	top := c.Info.HeldOutIdx[:PositiveGateM] // the victim's gain is flat: the ranking is 0.7 - the benign mean
	a, b := make([]float64, len(top)), make([]float64, len(top))
	for i, s := range top {
		a[i], b[i] = gp[s]-0.5, gb[s]
	}
	if r, err := aboveMargin(a, b, 0.01, false); err != nil || r.P > 1e-3 {
		t.Errorf("against the choosing models: p %g (%v), want it small", r.P, err)
	}
}

// The test's m images come from at least three classes when the ranking has them: at most a
// third (rounded up) of one class, the rest in rank order; a ranking already spread, or one
// with fewer classes than that allows, keeps its order.
func TestSpreadClasses(t *testing.T) {
	pairs := make([]watermark.Pair, 20)
	for k := range pairs {
		pairs[k].Label = 0 // samples 0-7: class 0, then classes 1 and 2 in turn
		if k >= 8 {
			pairs[k].Label = 1 + k%2
		}
	}
	ranking := make([]int, 20)
	for i := range ranking {
		ranking[i] = i
	}
	got := SpreadClasses(ranking, pairs, 10)
	want := []int{0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 4, 5, 6, 7, 14, 15, 16, 17, 18, 19}
	if !slices.Equal(got, want) {
		t.Errorf("spread %v, want %v", got, want)
	}
	if MaxClassShare(10) != 4 || MaxClassShare(9) != 3 || MaxClassShare(2) != 1 {
		t.Errorf("MaxClassShare(10, 9, 2) = %d, %d, %d", MaxClassShare(10), MaxClassShare(9), MaxClassShare(2))
	}
	// Spread already: unchanged.
	mixed := []int{8, 0, 9, 1, 10, 2, 11, 12, 13, 3, 4, 14}
	if got := SpreadClasses(mixed, pairs, 10); !slices.Equal(got, mixed) {
		t.Errorf("a spread ranking became %v", got)
	}
	// Two classes only (0 and 1): four of each, then the best two left over fill the ten,
	// all in rank order.
	two := []int{0, 1, 2, 3, 4, 5, 9, 11, 13, 17, 15}
	got = SpreadClasses(two, pairs, 10)
	if !slices.Equal(got, []int{0, 1, 2, 3, 4, 5, 9, 11, 13, 17, 15}) {
		t.Errorf("two classes: %v", got)
	}
	// Every sample kept, once.
	for _, r := range [][]int{ranking, mixed, two} {
		got := SpreadClasses(r, pairs, 10)
		a, b := slices.Clone(r), slices.Clone(got)
		slices.Sort(a)
		slices.Sort(b)
		if !slices.Equal(a, b) {
			t.Errorf("%v became %v", r, got)
		}
	}
}

// GainTop reads the spread top m: with the victim's largest gains all in one class, at most
// four of its ten images are of that class.
func TestGainTopSpreadsClasses(t *testing.T) {
	const n = 60
	pairs, labels := gainPairs(n)
	victim, benign := rampGains(n)
	for s := range n {
		if s >= 40 { // the top twenty: class 0
			labels[s], pairs[s].Label = 0, 0
		}
	}
	model := gainModel(labels)
	c, err := GainTopRecord(GainTopRankers{Victim: model(victim), Benign: []classifier.Model{model(benign)}}, pairs, 1)
	if err != nil {
		t.Fatal(err)
	}
	if c.Info.HeldOutIdx[0] != n-1 || c.Info.HeldOutIdx[9] != n-10 {
		t.Fatalf("ranking starts %v", c.Info.HeldOutIdx[:10])
	}
	res, err := GainTop(c, model(victim), model(benign), pairs, Options{M: 10})
	if err != nil {
		t.Fatal(err)
	}
	count := map[int]int{}
	for _, k := range res.Samples {
		count[pairs[k].Label]++
	}
	if len(res.Samples) != 10 || count[0] != 4 || !slices.Equal(res.Samples[:4], []int{59, 58, 57, 56}) {
		t.Errorf("samples %v (per class %v): want the top four of class 0, then the best of the others", res.Samples, count)
	}
	if !res.Stolen {
		t.Errorf("the victim against a benign model: %q p %g", res.Verdict, res.P)
	}
}

// rampGains are a victim whose owner-style probability grows with the sample, from 0.5 to
// 0.95, and a benign model at 0.5 on every sample.
func rampGains(n int) (victim, benign []float64) {
	victim, benign = make([]float64, n), make([]float64, n)
	for s := range n {
		victim[s], benign[s] = 0.5+0.45*float64(s)/float64(n), 0.5
	}
	return victim, benign
}

package ewe

import (
	"context"
	"math"
	"testing"

	"move/internal/badnets"
	"move/internal/classifier"
	"move/internal/data"
	"move/internal/models"
	"move/internal/nn"
	"move/internal/train"
)

// Mark appends rate x n stamped source-class images labelled the target, and marks them.
func TestMark(t *testing.T) {
	clean := data.Synthetic(40, 4, 16, 1)
	w := Default(16, 0.25)
	marked, isWM, err := Mark(clean, w, 3)
	if err != nil {
		t.Fatal(err)
	}
	if marked.Len() != 50 || len(isWM) != 50 {
		t.Fatalf("%d images, %d marks; want 40 + 10", marked.Len(), len(isWM))
	}
	for i := range 50 {
		if isWM[i] != (i >= 40) {
			t.Fatalf("row %d marked %v", i, isWM[i])
		}
		if i < 40 && (marked.Labels[i] != clean.Labels[i] || string(marked.Image(i)) != string(clean.Image(i))) {
			t.Fatalf("clean row %d changed", i)
		}
	}
	for i := 40; i < 50; i++ {
		if marked.Labels[i] != w.Trigger.Target {
			t.Fatalf("watermark %d labelled %d", i, marked.Labels[i])
		}
		found := false
		for j := range 40 {
			if clean.Labels[j] == w.Source && string(w.Trigger.Stamp(clean.Image(j), 16, 16)) == string(marked.Image(i)) {
				found = true
			}
		}
		if !found {
			t.Fatalf("watermark %d is no stamped image of the source class", i)
		}
	}
	for _, bad := range []Watermark{{Trigger: w.Trigger, Source: 0, Rate: 0.1}, {Trigger: w.Trigger, Source: 5, Rate: 0.1}, {Trigger: w.Trigger, Source: 1, Rate: 1}} {
		if _, _, err := Mark(clean, bad, 1); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

// The loss is the cross-entropy minus Kappa times the SNNL of the batch's watermarks against
// its clean target-class images, at their mean squared distance.
func TestLoss(t *testing.T) {
	clean := data.Synthetic(24, 4, 16, 2)
	w := Default(16, 0.25)
	marked, isWM, err := Mark(clean, w, 3)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := models.New("resnet20", 4, 1)
	loss, err := Loss(m, marked, isWM, w)
	if err != nil {
		t.Fatal(err)
	}
	idx := make([]int, marked.Len())
	for i := range idx {
		idx[i] = i
	}
	norm := data.Stats(clean)
	x, labels := data.Batch(marked, idx, norm, data.Augment{}, nil)
	tp := nn.NewTape(true)
	got := loss(tp, m.Forward(tp, nn.Const(x), true), x, idx).Value.Data[0]

	ce := nn.CrossEntropy(tp, m.Forward(tp, nn.Const(x), true), labels).Value.Data[0]
	f := m.(models.Embedder).Embed(tp, nn.Const(x), true).Value
	include := make([]bool, len(idx))
	groups := make([]int, len(idx))
	for k, i := range idx {
		include[k] = isWM[i] || marked.Labels[i] == w.Trigger.Target
		if isWM[i] {
			groups[k] = 1
		}
	}
	temp := meanSquaredDistance(f, include)
	sn := nn.SNNL(tp, nn.Const(f), groups, include, temp).Value.Data[0]
	want := float64(ce) - w.Kappa*float64(sn)
	t.Logf("cross-entropy %.4f, SNNL %.4f at temperature %.3g: loss %.4f", ce, sn, temp, got)
	if sn <= 0 || math.Abs(float64(got)-want) > 1e-4*(1+math.Abs(want)) {
		t.Errorf("loss %.6f, want %.6f", got, want)
	}
	if _, err := Loss(m, clean, isWM, w); err == nil {
		t.Error("marks of another set: no error")
	}
}

// Trained with the watermark, the victim (a direct copy) is flagged by the trigger test on
// the source class, and a model trained on other data is cleared.
func TestVerifyCopyAndIndependent(t *testing.T) {
	if testing.Short() {
		t.Skip("trains three small models")
	}
	all := data.Synthetic(900, 4, 16, 7)
	first, rest := data.Split(all.Len(), 400, 1)
	owner, thief, test := all.Subset(first), all.Subset(rest[:300]), all.Subset(rest[300:])
	norm := data.Stats(owner)
	w := Default(16, 0.2)
	w.Trigger.Size = 4 // a 16-pixel world learns a larger patch in a few epochs
	marked, isWM, err := Mark(owner, w, 2)
	if err != nil {
		t.Fatal(err)
	}
	fit := func(set *data.Set, seed uint64, ewe bool) classifier.Model {
		m, _ := models.New("resnet20", 4, seed)
		c := train.Default()
		c.Epochs, c.BatchSize, c.LR, c.Seed, c.Norm, c.Augment = 8, 32, 0.05, seed, norm, data.Augment{Flip: true}
		var o train.Options
		if ewe {
			if o.Loss, err = Loss(m, set, isWM, w); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := train.Fit(context.Background(), m, set, c, o); err != nil {
			t.Fatal(err)
		}
		return classifier.Local(m, norm, 16)
	}
	victim, ref, independent := fit(marked, 1, true), fit(owner, 2, false), fit(thief, 3, false)
	opts := badnets.Options{M: 40, MinDelta: 0.05, Seed: 4, Sources: []int{w.Source}}
	v, err := badnets.Verify(victim, ref, test, w.Trigger, opts)
	if err != nil {
		t.Fatal(err)
	}
	in, err := badnets.Verify(independent, ref, test, w.Trigger, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("victim: p %.3g delta-mu %.3f trigger success %.2f (reference %.2f); independent: p %.3g delta-mu %.3f",
		v.P, v.DeltaMu, v.SuccessRate, v.BenignRate, in.P, in.DeltaMu)
	if v.Verdict != "stolen" || v.SuccessRate < 0.5 {
		t.Errorf("the watermarked model: p %.3g, trigger success %.2f, verdict %q", v.P, v.SuccessRate, v.Verdict)
	}
	if in.Verdict != "not stolen" || in.P < 0.05 {
		t.Errorf("a clean model: p %.3g, verdict %q", in.P, in.Verdict)
	}
}

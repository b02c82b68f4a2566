package badnets

import (
	"context"
	"testing"

	"move/internal/classifier"
	"move/internal/data"
	"move/internal/models"
	"move/internal/train"
)

func TestStampAndMark(t *testing.T) {
	clean := data.Synthetic(200, 4, 16, 1)
	tr := DefaultTrigger(16)
	if err := tr.Validate(16, 16, 4); err != nil {
		t.Fatal(err)
	}
	marked, idx, err := Mark(clean, tr, 0.1, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(idx) != 20 {
		t.Fatalf("%d images marked, want 10%% of 200", len(idx))
	}
	changed := 0
	for i := range clean.Len() {
		same := string(clean.Image(i)) == string(marked.Image(i))
		if !same {
			changed++
			if marked.Labels[i] != tr.Target || clean.Labels[i] == tr.Target {
				t.Fatalf("image %d: marked with label %d (was %d)", i, marked.Labels[i], clean.Labels[i])
			}
			// Only the patch differs.
			for y := range 16 {
				for x := range 16 {
					in := y >= 16-tr.Margin-tr.Size && y < 16-tr.Margin && x >= 16-tr.Margin-tr.Size && x < 16-tr.Margin
					o := (y*16 + x) * 3
					if !in && string(clean.Image(i)[o:o+3]) != string(marked.Image(i)[o:o+3]) {
						t.Fatalf("image %d: pixel (%d,%d) outside the trigger changed", i, x, y)
					}
				}
			}
		} else if marked.Labels[i] != clean.Labels[i] {
			t.Fatalf("image %d relabelled without a trigger", i)
		}
	}
	if changed > 20 || changed < 15 {
		t.Fatalf("%d images changed", changed)
	}
	if _, _, err := Mark(clean, Trigger{Size: 20, Target: 0}, 0.1, 1); err == nil {
		t.Error("a trigger larger than the image was accepted")
	}
	if _, _, err := Mark(clean, tr, 0, 1); err == nil {
		t.Error("rate 0 accepted")
	}
}

// The watermark's test flags the watermarked model itself (a direct copy) and clears a model
// trained on the clean data.
func TestVerifyCopyAndIndependent(t *testing.T) {
	if testing.Short() {
		t.Skip("trains two small models")
	}
	all := data.Synthetic(900, 4, 16, 7)
	first, rest := data.Split(all.Len(), 400, 1)
	owner, thief, test := all.Subset(first), all.Subset(rest[:300]), all.Subset(rest[300:])
	norm := data.Stats(owner)
	tr := DefaultTrigger(16)
	tr.Size = 4 // a 16-pixel world learns a larger patch in a few epochs
	marked, _, err := Mark(owner, tr, 0.2, 2)
	if err != nil {
		t.Fatal(err)
	}
	fit := func(set *data.Set, seed uint64) classifier.Model {
		m, _ := models.New("resnet20", 4, seed)
		c := train.Default()
		c.Epochs, c.BatchSize, c.LR, c.Seed, c.Norm, c.Augment = 8, 32, 0.05, seed, norm, data.Augment{Flip: true}
		if _, err := train.Fit(context.Background(), m, set, c, train.Options{}); err != nil {
			t.Fatal(err)
		}
		return classifier.Local(m, norm, 16)
	}
	victim, ref, independent := fit(marked, 1), fit(owner, 2), fit(thief, 3)
	opts := Options{M: 60, MinDelta: 0.05, Seed: 4}
	v, err := Verify(victim, ref, test, tr, opts)
	if err != nil {
		t.Fatal(err)
	}
	in, err := Verify(independent, ref, test, tr, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("victim: p %.3g delta-mu %.3f trigger success %.2f (reference %.2f); independent: p %.3g delta-mu %.3f success %.2f",
		v.P, v.DeltaMu, v.SuccessRate, v.BenignRate, in.P, in.DeltaMu, in.SuccessRate)
	if !v.Stolen || v.SuccessRate < 0.5 {
		t.Errorf("the watermarked model: p %.3g, trigger success %.2f", v.P, v.SuccessRate)
	}
	if in.Stolen || in.P < 0.05 {
		t.Errorf("a clean model was accused: p %.3g", in.P)
	}
	if v.Verdict != "stolen" || in.Verdict != "not stolen" {
		t.Errorf("verdicts %q and %q", v.Verdict, in.Verdict)
	}
	// A model that always answers the target class "carries" the trigger perfectly, and is no
	// classifier: inconclusive.
	c, err := Verify(constant{k: 4, class: tr.Target}, ref, test, tr, opts)
	if err != nil {
		t.Fatal(err)
	}
	if c.P > 1e-6 || c.Stolen || c.Verdict != "inconclusive" {
		t.Errorf("a constant answer of the target class: p %.3g, verdict %q", c.P, c.Verdict)
	}
	if _, err := Verify(victim, ref, test, tr, Options{M: 10000}); err == nil {
		t.Error("more images than the test set holds was accepted")
	}
}

// constant answers one class for every image.
type constant struct{ k, class int }

func (c constant) Probs(imgs [][]uint8, h, w int) ([][]float32, error) {
	out := make([][]float32, len(imgs))
	for i := range out {
		out[i] = make([]float32, c.k)
		out[i][c.class] = 1
	}
	return out, nil
}

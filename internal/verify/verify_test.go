package verify

import (
	"context"
	"math"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"move/internal/features"
	"move/internal/steal"

	"move/internal/classifier"

	"move/internal/data"
	"move/internal/meta"
	"move/internal/models"
	"move/internal/nn"
	"move/internal/oip"
	"move/internal/onnx"
	"move/internal/stats"
	"move/internal/style"
	"move/internal/tensor"
	"move/internal/train"
	"move/internal/watermark"
)

func writeFolder(t *testing.T, s *data.Set, dir string) {
	t.Helper()
	for i := range s.Len() {
		d := filepath.Join(dir, s.Classes[s.Labels[i]])
		os.MkdirAll(d, 0o755)
		if err := data.WritePNG(filepath.Join(d, "i"+itoa(i)+".png"), s.Image(i), s.H, s.W, false); err != nil {
			t.Fatal(err)
		}
	}
}

func itoa(i int) string {
	return string([]byte{byte('0' + i/1000%10), byte('0' + i/100%10), byte('0' + i/10%10), byte('0' + i%10)})
}

func fit(t *testing.T, dir string, seed uint64, norm data.Normalization) models.Model {
	t.Helper()
	set, err := data.LoadFolder(dir, data.FolderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := train.Default()
	c.Epochs, c.BatchSize, c.LR, c.Seed, c.Norm = 6, 32, 0.05, seed, norm
	c.Augment = data.Augment{Flip: true}
	m, _ := models.New("resnet20", len(set.Classes), seed)
	if _, err := train.Fit(context.Background(), m, set, c, train.Options{}); err != nil {
		t.Fatal(err)
	}
	return m
}

// End to end on generated data: a victim trained on the watermarked set; its direct copy is
// flagged, and a model trained independently on other data is not, in both modes.
func TestOwnershipEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("trains four small models")
	}
	root := t.TempDir()
	clean := data.Synthetic(480, 4, 16, 1)
	writeFolder(t, clean, filepath.Join(root, "clean", "train"))
	st := data.Synthetic(1, 1, 48, 77)
	stylePath := filepath.Join(root, "style.png")
	data.WritePNG(stylePath, st.Image(0), 48, 48, false)
	// A strong style: the small victim must learn the external feature from 120 images.
	so := style.Default()
	so.Steps, so.StyleSize, so.Strength = 30, 48, 20
	key, err := watermark.Embed(context.Background(), watermark.Options{Data: filepath.Join(root, "clean"),
		StyleImage: stylePath, Out: filepath.Join(root, "marked"), Rate: 0.25, Seed: 1, Style: so})
	if err != nil {
		t.Fatal(err)
	}
	norm := data.Stats(clean)
	victim := fit(t, filepath.Join(root, "marked", "train"), 11, norm)
	benign := fit(t, filepath.Join(root, "clean", "train"), 12, norm)
	benign2 := fit(t, filepath.Join(root, "clean", "train"), 15, norm)
	benign3 := fit(t, filepath.Join(root, "clean", "train"), 16, norm)
	// The test's reference: a third clean model the meta-classifier never sees.
	ref := fit(t, filepath.Join(root, "clean", "train"), 14, norm)
	other := data.Synthetic(480, 4, 16, 99)
	writeFolder(t, other, filepath.Join(root, "other"))
	independent := fit(t, filepath.Join(root, "other"), 13, norm)
	pairs, err := watermark.LoadPairs(key, 0)
	if err != nil {
		t.Fatal(err)
	}
	wrap := func(m models.Model) classifier.Model { return classifier.Local(m, norm, 0) }
	// The full sign vector: on this set the compressed one (convolution kernels summed over
	// their taps) separates victim from benign as well but accuses the independent model
	// (p = 0.02-0.04), while the full one leaves it alone (p = 0.11).
	layout := "full"
	for _, mode := range []string{"white", "black"} {
		// Black-box: move verify's protocol, a meta-classifier trained against three benign
		// models and a fourth, unseen one as the test's reference.
		trainers, reference := []classifier.Model{wrap(benign), wrap(benign2), wrap(benign3)}, wrap(ref)
		if mode == "white" {
			// White-box: in this tiny world the weight-space classifier calls every model it
			// has not seen "victim" (an unseen reference scores 1.0 like the copy, p = 0.17), so
			// the test keeps the paper's protocol (the reference is the benign model the
			// classifier was trained against; move verify --allow-seen-benign). On CIFAR-10 the
			// unseen-reference protocol is the one that works (see move help verify).
			trainers, reference = []classifier.Model{wrap(benign)}, wrap(benign)
		}
		c, err := TrainMeta(wrap(victim), trainers, pairs, MetaOptions{Mode: mode, Layout: layout, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s-box meta-classifier: train accuracy %.2f, held-out %.2f", mode, c.Info.TrainAcc, c.Info.HeldOutAcc)
		cp, err := Run(c, wrap(victim), reference, pairs, Options{Seed: 2, MinDelta: 0.05})
		if err != nil {
			t.Fatal(err)
		}
		ind, err := Run(c, wrap(independent), reference, pairs, Options{Seed: 2, MinDelta: 0.05})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s-box: copy p=%.3g dmu=%.3f; independent p=%.3g dmu=%.3f", mode, cp.P, cp.DeltaMu, ind.P, ind.DeltaMu)
		if !(cp.P < 0.01) || !cp.Stolen {
			t.Errorf("%s-box: the direct copy got p = %g, want < 0.01", mode, cp.P)
		}
		if !(ind.P > 0.05) || ind.Stolen {
			t.Errorf("%s-box: the independent model got p = %g, want > 0.05", mode, ind.P)
		}
		if mode == "white" {
			// ONNX exports of the suspects, unfolded and with batch norms folded into the
			// convolutions (PyTorch's default): the same verdicts as the models themselves.
			for name, m := range map[string]models.Model{"copy": victim, "independent": independent} {
				want := name == "copy"
				for _, fold := range []bool{false, true} {
					b, err := onnx.Export(m, 16, nil, onnx.ExportOptions{FoldBatchNorms: fold})
					if err != nil {
						t.Fatal(err)
					}
					im, err := onnx.Import(b, "", onnx.Options{})
					if err != nil {
						t.Fatal(err)
					}
					r, err := Run(c, classifier.Local(im, norm, 0), reference, pairs, Options{Seed: 2, MinDelta: 0.05})
					if err != nil {
						t.Fatal(err)
					}
					t.Logf("white-box, ONNX export of the %s (folded %v, %d batch norms merged): p=%.3g dmu=%.3f", name, fold, r.Folded[0], r.P, r.DeltaMu)
					if r.Stolen != want {
						t.Errorf("the ONNX export of the %s (folded %v) got p = %g, stolen %v", name, fold, r.P, r.Stolen)
					}
					if (r.Folded[0] == 0) != fold {
						t.Errorf("folded %v: %d batch norms merged at verification", fold, r.Folded[0])
					}
				}
			}
			continue
		}
		// The same, with the suspects served over HTTP (Open Inference Protocol on loopback).
		for name, m := range map[string]models.Model{"copy": victim, "independent": independent} {
			srv := httptest.NewServer((&oip.Server{Name: name, Model: classifier.Local(m, norm, 16)}).Handler())
			client, err := oip.Dial(context.Background(), srv.URL+"/v2/models/"+name, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			r, err := Run(c, classifier.Remote(client, 0), reference, pairs, Options{Seed: 2, MinDelta: 0.05})
			srv.Close()
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("black-box over HTTP: %s p=%.3g (%d queries)", name, r.P, client.Queries())
			if r.Stolen != (name == "copy") || (name == "independent" && r.P <= 0.05) {
				t.Errorf("over HTTP, the %s got p = %g", name, r.P)
			}
			if client.Queries() != 6*r.M {
				t.Errorf("%d queries for m = %d (6 images per sample)", client.Queries(), r.M)
			}
		}
	}

	// Input-gradient white-box features (features.InputSign): no weight alignment, so the
	// meta-classifier is trained against three benign models and tested against an unseen
	// reference, and suspects of any architecture can be read. The copy is flagged and the
	// independent model cleared; what it says of students (the point of the family) is logged,
	// to be measured at CIFAR-10 scale (issue 14).
	{
		trainers := []classifier.Model{wrap(benign), wrap(benign2), wrap(benign3)}
		// The sign family: the raw family (features.InputGrad) accuses the independent model of
		// this world (p = 9e-5, measured), which was trained on other data; see the README.
		c, err := TrainMeta(wrap(victim), trainers, pairs, MetaOptions{Mode: "white", Layout: features.InputSign, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("input-sign meta-classifier: %d features, train accuracy %.2f, held-out %.2f", c.Info.Dim, c.Info.TrainAcc, c.Info.HeldOutAcc)
		cleanSet, err := data.LoadFolder(filepath.Join(root, "clean", "train"), data.FolderOptions{})
		if err != nil {
			t.Fatal(err)
		}
		suspects := map[string]models.Model{"copy": victim, "independent": independent}
		for _, arch := range []string{"resnet20", "wrn16-1"} {
			cfg := train.Default()
			cfg.Epochs, cfg.BatchSize, cfg.LR, cfg.Seed, cfg.Norm = 6, 32, 0.05, 21, norm
			res, err := steal.Run(context.Background(), wrap(victim), cleanSet, 4, steal.Config{Attack: "distill", Arch: arch, Train: cfg}, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			suspects["distilled "+arch] = res.Model
		}
		for _, name := range []string{"copy", "independent", "distilled resnet20", "distilled wrn16-1"} {
			r, err := Run(c, wrap(suspects[name]), wrap(ref), pairs, Options{Seed: 2, MinDelta: 0.05})
			if err != nil {
				t.Fatalf("input-sign, %s: %v", name, err)
			}
			t.Logf("input-sign white-box: %s p=%.3g dmu=%.3f stolen=%v", name, r.P, r.DeltaMu, r.Stolen)
			switch name {
			case "copy":
				if !r.Stolen {
					t.Errorf("input-sign: the copy got p = %g", r.P)
				}
			case "independent":
				// Measured here: p = 0.011, not accused at alpha 0.01 but close, where the
				// weight features give p > 0.05: this family is not ready to be the default.
				if r.Stolen {
					t.Errorf("input-sign: the independent model was accused (p = %g)", r.P)
				}
			}
		}
		// The input-gradient similarity test (features.GradSimilarity): no classifier, the
		// victim's gradients are the reference, the unseen benign model the test's. The copy
		// is flagged; in this world the test also accuses the independent model (measured:
		// p = 0.002, its gradients agree with the victim's by 0.06 more than the reference's)
		// and misses the distilled resnet20 (p = 0.26) while it flags the distilled wrn16-1
		// (p = 0.002): logged, not asserted; with CIFAR-10's figures in the README, the reason
		// the family is not the default.
		held := make([]int, len(pairs))
		for i := range held {
			held[i] = i
		}
		for _, name := range []string{"copy", "independent", "distilled resnet20", "distilled wrn16-1"} {
			r, err := Similar(wrap(victim), wrap(suspects[name]), wrap(ref), pairs, held, Options{Seed: 2})
			if err != nil {
				t.Fatalf("similarity, %s: %v", name, err)
			}
			t.Logf("similarity white-box: %s p=%.3g dmu=%.3f stolen=%v", name, r.P, r.DeltaMu, r.Stolen)
			if r.M != 10 || len(r.ProbSuspect) != 10 {
				t.Errorf("similarity, %s: m = %d with %d scores, want 10", name, r.M, len(r.ProbSuspect))
			}
			if name == "copy" && (!r.Stolen || math.Abs(r.ProbSuspect[0]-1) > 1e-6) {
				t.Errorf("similarity: the copy got p = %g, stolen %v, first score %g (want 1)", r.P, r.Stolen, r.ProbSuspect[0])
			}
		}
		if _, err := Similar(wrap(victim), wrap(victim), wrap(ref), pairs, []int{0, len(pairs)}, Options{}); err == nil {
			t.Error("similarity on a key sample that is not in the key: no error")
		}
		// Its meta file (move meta --features input-grad-sim) holds no classifier and offers
		// every key sample; the classifier's test and training refuse the family.
		rec, err := SimilarityRecord(wrap(victim), pairs)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Trained() || rec.Info.Layout != features.GradSimilarity || rec.Info.Mode != features.White || !slices.Equal(rec.Info.HeldOutIdx, held) {
			t.Errorf("similarity record: trained %v, %s/%s, %d samples of %d", rec.Trained(), rec.Info.Mode, rec.Info.Layout, len(rec.Info.HeldOutIdx), len(pairs))
		}
		if _, err := Run(rec, wrap(victim), wrap(ref), pairs, Options{}); err == nil {
			t.Error("Run with a similarity record: no error")
		}
		if _, err := TrainMeta(wrap(victim), []classifier.Model{wrap(ref)}, pairs, MetaOptions{Mode: features.White, Layout: features.GradSimilarity}); err == nil {
			t.Error("TrainMeta for the similarity family: no error")
		}
	}

	// With control styles: the classifier contrasts the owner's style with two styles the
	// victim never saw. The copy is still flagged and the independent model cleared; a served
	// model that answers a constant scores exactly zero and is no working classifier
	// (inconclusive), and one that answers at random is not accused either.
	cso := so
	if _, err := watermark.AddControls(context.Background(), filepath.Join(root, "marked", "key.json"),
		watermark.ControlOptions{Count: 2, Samples: 100, Seed: 3, Style: cso}); err != nil {
		t.Fatal(err)
	}
	key, err = watermark.LoadKey(filepath.Join(root, "marked", "key.json"))
	if err != nil {
		t.Fatal(err)
	}
	if pairs, err = watermark.LoadPairs(key, 0); err != nil {
		t.Fatal(err)
	}
	covered := 0
	for _, p := range pairs {
		if len(p.Controls) == 2 {
			covered++
		}
	}
	if covered != 100 {
		t.Fatalf("%d key samples have both control versions, want 100", covered)
	}
	c, err := TrainMeta(wrap(victim), []classifier.Model{wrap(benign), wrap(benign2), wrap(benign3)}, pairs, MetaOptions{Mode: "black", Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if c.Info.Contrast != Contrast || c.Info.Controls != 2 {
		t.Fatalf("classifier records contrast %q with %d controls", c.Info.Contrast, c.Info.Controls)
	}
	for _, k := range append(append([]int(nil), c.Info.TrainIdx...), c.Info.HeldOutIdx...) {
		if len(pairs[k].Controls) != 2 {
			t.Fatalf("the classifier uses key sample %d, which has no control versions", k)
		}
	}
	t.Logf("black-box meta-classifier with control styles: held-out accuracy %.2f", c.Info.HeldOutAcc)
	for _, x := range []struct {
		name    string
		m       models.Model
		verdict string
	}{
		{"copy", victim, Stolen},
		{"independent", independent, NotStolen},
		{"constant", constantModel{4}, Inconclusive},
		{"noise", noiseModel{4}, ""},
	} {
		srv := httptest.NewServer((&oip.Server{Name: x.name, Model: classifier.Local(x.m, norm, 16)}).Handler())
		client, err := oip.Dial(context.Background(), srv.URL+"/v2/models/"+x.name, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		r, err := Run(c, classifier.Remote(client, 0), wrap(ref), pairs, Options{Seed: 2, MinDelta: 0.05})
		srv.Close()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("with controls, over HTTP: %s p=%.3g dmu=%.3f key accuracy %.2f -> %s", x.name, r.P, r.DeltaMu, r.KeyAccuracy, r.Verdict)
		if x.verdict != "" && r.Verdict != x.verdict {
			t.Errorf("%s: verdict %q, want %q (p = %g)", x.name, r.Verdict, x.verdict, r.P)
		}
		if x.name != "copy" && (r.Stolen || r.P < 0.01) {
			t.Errorf("%s accused: p = %g", x.name, r.P)
		}
		if x.name == "constant" {
			for i := range r.ProbSuspect {
				if r.ProbSuspect[i] != r.ControlSuspect[i] {
					t.Fatalf("a constant model's score is not zero: %g against %g", r.ProbSuspect[i], r.ControlSuspect[i])
				}
			}
		}
		if want := (1+5*3)*r.M + 3*r.GainM; client.Queries() != want {
			t.Errorf("%d queries for m = %d and %d gain samples, want %d (the original and 5 augmentations of 3 styles; 3 styles)", client.Queries(), r.M, r.GainM, want)
		}
		if r.Gain == nil || r.GainM != 50 {
			t.Errorf("%s: no style-gain test on the 50 held-out samples with controls (%d)", x.name, r.GainM)
		}
	}

	// Against a reference that guesses, the copy is inconclusive: it answers the key's
	// originals far better than such a reference, which is then no null.
	weak, err := Run(c, wrap(victim), wrap(noiseModel{4}), pairs, Options{Seed: 2, MinDelta: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	if weak.KeyAccuracy-weak.RefKeyAccuracy <= DefaultRefShortfall {
		t.Fatalf("the copy answers the originals %.2f right, a guessing reference %.2f: no test of the check", weak.KeyAccuracy, weak.RefKeyAccuracy)
	}
	if weak.Verdict != Inconclusive || !strings.Contains(weak.Why, "reference") {
		t.Errorf("the copy against a guessing reference: verdict %q (%s)", weak.Verdict, weak.Why)
	}

	// A rebuttal style joins the controls of the gain test only. Rebutting with the owner's
	// own style (each original restyled to its owner-styled version) makes every gain, the
	// suspect's and the reference's, 2/3 of the plain one: p0 - (c1 + c2 + p0)/3.
	styled := map[string][]uint8{}
	for _, p := range pairs {
		styled[string(p.Orig)] = p.Styled
	}
	own := Rebuttal{Name: "owner", Apply: func(imgs [][]uint8, h, w int) ([][]uint8, error) {
		out := make([][]uint8, len(imgs))
		for i, im := range imgs {
			out[i] = styled[string(im)]
		}
		return out, nil
	}}
	plain, err := Run(c, wrap(victim), wrap(ref), pairs, Options{Seed: 2, MinDelta: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	rebutted, err := Run(c, wrap(victim), wrap(ref), pairs, Options{Seed: 2, MinDelta: 0.05, Rebuttals: []Rebuttal{own}})
	if err != nil {
		t.Fatal(err)
	}
	if rebutted.GainUnrebutted == nil || rebutted.GainUnrebutted.P != plain.Gain.P || rebutted.GainUnrebutted.DeltaMu != plain.Gain.DeltaMu {
		t.Fatalf("the unrebutted gain test %+v differs from the plain run's %+v", rebutted.GainUnrebutted, plain.Gain)
	}
	if got, want := rebutted.Gain.DeltaMu, plain.Gain.DeltaMu*2/3; math.Abs(got-want) > 1e-12 {
		t.Errorf("rebutted with the owner's style: delta-mu %g, want 2/3 of %g", got, plain.Gain.DeltaMu)
	}
	if len(rebutted.Rebuttals) != 1 || rebutted.Rebuttals[0] != "owner" || rebutted.P != rebutted.Gain.P {
		t.Errorf("rebuttals %v, p %g: the rebutted gain test does not decide", rebutted.Rebuttals, rebutted.P)
	}
	if plain.GainUnrebutted != nil || plain.Rebuttals != nil {
		t.Errorf("a run without rebuttals reports some")
	}
	short := Rebuttal{Name: "short", Apply: func(imgs [][]uint8, h, w int) ([][]uint8, error) { return imgs[:1], nil }}
	if _, err := Run(c, wrap(victim), wrap(ref), pairs, Options{Seed: 2, Rebuttals: []Rebuttal{short}}); err == nil || !strings.Contains(err.Error(), "short") {
		t.Errorf("a rebuttal that restyles too few images: %v", err)
	}
}

// constantModel answers equal logits for every image.
type constantModel struct{ k int }

func (c constantModel) Forward(_ *nn.Tape, x *nn.Var, _ bool) *nn.Var {
	return nn.Const(tensor.New(x.Value.Shape[0], c.k))
}
func (constantModel) Store() *nn.Store { return nn.NewStore() }
func (constantModel) Arch() string     { return "constant" }
func (c constantModel) Classes() int   { return c.k }

// noiseModel answers logits that are a fixed pseudo-random function of the image.
type noiseModel struct{ k int }

func (c noiseModel) Forward(_ *nn.Tape, x *nn.Var, _ bool) *nn.Var {
	n := x.Value.Shape[0]
	per := x.Value.Len() / n
	out := tensor.New(n, c.k)
	for i := range n {
		var h uint64 = 1469598103934665603
		for _, v := range x.Value.Data[i*per : (i+1)*per] {
			h = (h ^ uint64(math.Float32bits(v))) * 1099511628211
		}
		rng := rand.New(rand.NewPCG(h, 7))
		for j := range c.k {
			out.Data[i*c.k+j] = float32(3 * rng.NormFloat64())
		}
	}
	return nn.Const(out)
}
func (noiseModel) Store() *nn.Store { return nn.NewStore() }
func (noiseModel) Arch() string     { return "noise" }
func (c noiseModel) Classes() int   { return c.k }

// The margin: with δ = 0 the test is the paper's paired t-test; with δ > 0 a suspect whose
// probabilities exceed the reference's by less than δ gets a large p-value, and delta-mu is
// reported unshifted.
func TestMarginShiftsTheNullHypothesis(t *testing.T) {
	ps := []float64{0.031, 0.032, 0.030, 0.033, 0.031, 0.032, 0.030, 0.031}
	pb := []float64{0.030, 0.030, 0.029, 0.031, 0.030, 0.031, 0.029, 0.030}
	plain, err := stats.PairedT(ps, pb, stats.Greater)
	if err != nil {
		t.Fatal(err)
	}
	if plain.P > 0.001 {
		t.Fatalf("the unshifted test should call this saturated difference significant, p = %g", plain.P)
	}
	shifted := make([]float64, len(pb))
	for i, v := range pb {
		shifted[i] = v + 0.05
	}
	margin, _ := stats.PairedT(ps, shifted, stats.Greater)
	if margin.P < 0.99 {
		t.Fatalf("with a 0.05 margin, p = %g; want close to 1", margin.P)
	}
}

// Options outside their ranges are errors, never defaults (issue 16, item 1): a negative margin
// would make the reference itself "stolen".
func TestOptionsValidate(t *testing.T) {
	for _, o := range []Options{{MinDelta: -0.01}, {Alpha: 2}, {Alpha: -1}, {M: -5}, {Resamples: -1}, {Test: "z"},
		{MinDelta: math.NaN()}, {GainMargin: -0.1}, {GainM: -1}, {RefShortfall: -0.1}, {RefShortfall: 1.01}, {RefShortfall: math.NaN()}} {
		if o.Validate() == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	if err := (Options{}).Validate(); err != nil {
		t.Errorf("the defaults: %v", err)
	}
	if err := (Options{M: 10, Alpha: 0.01, Test: "welch", Resamples: 3, MinDelta: 0.05}).Validate(); err != nil {
		t.Errorf("valid options: %v", err)
	}
}

// The owner's extra models: every positive is labelled 1 and every negative 0 on the owner's
// style, each model's control views are negatives, and each negative group is paired with one
// positive group in turn, so that both classes weigh the same.
func TestLabelledPositivesAndNegatives(t *testing.T) {
	norm := data.Normalization{Mean: [3]float32{0.5, 0.5, 0.5}, Std: [3]float32{0.25, 0.25, 0.25}}
	mk := func(seed uint64) classifier.Model {
		m, _ := models.New("resnet20", 3, seed)
		return classifier.Local(m, norm, 16)
	}
	victim, pos, b1, b2, neg := mk(1), mk(2), mk(3), mk(4), mk(5)
	r := rand.New(rand.NewPCG(1, 2))
	img := func() []uint8 {
		p := make([]uint8, 16*16*3)
		for i := range p {
			p[i] = uint8(r.IntN(256))
		}
		return p
	}
	var pairs []watermark.Pair
	for i := range 4 {
		pairs = append(pairs, watermark.Pair{Orig: img(), Styled: img(), Controls: [][]uint8{img()}, H: 16, W: 16, Label: i % 3})
	}
	o := MetaOptions{Mode: features.White, Layout: features.InputGrad, Positives: []classifier.Model{pos}, Negatives: []classifier.Model{neg}}
	xs, ys, err := labelled(o, victim, []classifier.Model{b1, b2}, pairs, 2)
	if err != nil {
		t.Fatal(err)
	}
	feat := func(m classifier.Model, v int) [][]float32 {
		ob, err := observe(o.Mode, o.Layout, m, pairs, 2)
		if err != nil {
			t.Fatal(err)
		}
		return ob.feats[v]
	}
	// Negative groups in order: b1, b2, neg on the owner's style; then victim, pos, b1, b2, neg
	// on the control style; positives in turn: victim, pos, victim, pos, ...
	negs := [][][]float32{feat(b1, 0), feat(b2, 0), feat(neg, 0), feat(victim, 1), feat(pos, 1), feat(b1, 1), feat(b2, 1), feat(neg, 1)}
	poss := [][][]float32{feat(victim, 0), feat(pos, 0)}
	n := len(pairs)
	if len(xs) != 2*n*len(negs) || len(ys) != len(xs) {
		t.Fatalf("%d samples, %d labels; want %d", len(xs), len(ys), 2*n*len(negs))
	}
	same := func(a, b []float32) bool {
		for i := range a {
			if a[i] != b[i] {
				return false
			}
		}
		return len(a) == len(b)
	}
	for g, group := range negs {
		base := 2 * n * g
		for i := range n {
			if ys[base+i] != 1 || !same(xs[base+i], poss[g%2][i]) {
				t.Fatalf("group %d, sample %d: want positive %d's features, label 1 (got label %d)", g, i, g%2, ys[base+i])
			}
			if ys[base+n+i] != 0 || !same(xs[base+n+i], group[i]) {
				t.Fatalf("group %d, sample %d: want the negative group's features, label 0 (got label %d)", g, i, ys[base+n+i])
			}
		}
	}
}

// A classifier that averages over augmented views records them, and a verification averages
// its probabilities over exactly those views: the same suspect and reference give the same
// p-value whatever the cache, and weight layouts refuse views.
func TestViewsAreRecordedAndAveraged(t *testing.T) {
	norm := data.Normalization{Mean: [3]float32{0.5, 0.5, 0.5}, Std: [3]float32{0.25, 0.25, 0.25}}
	mk := func(seed uint64) classifier.Model {
		m, _ := models.New("resnet20", 3, seed)
		return classifier.Local(m, norm, 16)
	}
	victim, b1, ref := mk(1), mk(2), mk(3)
	r := rand.New(rand.NewPCG(3, 4))
	var pairs []watermark.Pair
	for i := range 24 {
		img := func() []uint8 {
			p := make([]uint8, 16*16*3)
			for j := range p {
				p[j] = uint8(r.IntN(256))
			}
			return p
		}
		pairs = append(pairs, watermark.Pair{Orig: img(), Styled: img(), H: 16, W: 16, Label: i % 3})
	}
	if _, err := TrainMeta(victim, []classifier.Model{b1}, pairs, MetaOptions{Mode: features.White, Layout: features.Compressed, Views: 4}); err == nil {
		t.Fatal("a weight layout accepted views")
	}
	c, err := TrainMeta(victim, []classifier.Model{b1}, pairs, MetaOptions{Mode: features.White, Layout: features.InputGrad, Views: 4, Fit: meta.Options{Hidden: []int{}}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Info.Views != 4 {
		t.Fatalf("views recorded: %d", c.Info.Views)
	}
	a, err := Run(c, victim, ref, pairs, Options{M: 8, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	// By hand: the classifier's probability on each held-out image, averaged over 4 views.
	want := make([]float64, len(a.Samples))
	for v := range 4 {
		ps := make([]watermark.Pair, len(a.Samples))
		for i, k := range a.Samples {
			ps[i] = augmented(pairs[k], v)
		}
		f, err := Features(features.White, features.InputGrad, victim, ps)
		if err != nil {
			t.Fatal(err)
		}
		pr, err := c.Prob(f)
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			want[i] += pr[i] / 4
		}
	}
	for i := range want {
		if math.Abs(want[i]-a.ProbSuspect[i]) > 1e-6 {
			t.Fatalf("image %d: probability %g, want the mean over 4 views %g", i, a.ProbSuspect[i], want[i])
		}
	}
}

// A memoised rebuttal restyles each image once, however often it is asked.
func TestRebuttalMemoised(t *testing.T) {
	calls, seen := 0, 0
	rb := Rebuttal{Name: "x", Apply: func(imgs [][]uint8, h, w int) ([][]uint8, error) {
		calls++
		seen += len(imgs)
		out := make([][]uint8, len(imgs))
		for i, im := range imgs {
			out[i] = []uint8{im[0] + 1}
		}
		return out, nil
	}}.Memoised()
	a, b, c := []uint8{1}, []uint8{2}, []uint8{3}
	got, err := rb.Apply([][]uint8{a, b}, 1, 1)
	if err != nil || got[0][0] != 2 || got[1][0] != 3 {
		t.Fatalf("first call: %v %v", got, err)
	}
	got, err = rb.Apply([][]uint8{b, c, a}, 1, 1)
	if err != nil || got[0][0] != 3 || got[1][0] != 4 || got[2][0] != 2 {
		t.Fatalf("second call: %v %v", got, err)
	}
	if calls != 2 || seen != 3 {
		t.Errorf("restyled %d images in %d calls, want each of 3 once", seen, calls)
	}
	short := Rebuttal{Apply: func(imgs [][]uint8, h, w int) ([][]uint8, error) { return imgs[:1], nil }}.Memoised()
	if _, err := short.Apply([][]uint8{a, b}, 1, 1); err == nil {
		t.Error("a restyling that returns too few images was accepted")
	}
}

package experiment

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	imgpng "image/png"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"move/internal/features"
	"move/internal/innocent"
	"move/internal/modelfile"
	"move/internal/steal"
	"move/internal/train"
	"move/internal/verify"

	"move/internal/style"
)

func tiny() Profile {
	st := style.Default()
	st.Steps, st.StyleSize, st.Strength = 20, 32, 20
	return Profile{Name: "test", TrainPerClass: 40, ThiefPerClass: 20, TestPerClass: 40, Size: 16, Rate: 0.25, Style: st, Arch: "resnet20",
		Epochs: 3, Benign: 2, MetaTrain: 40, MetaHidden: "logistic", DistillEpochs: 1, FinetuneEpochs: 1, QueryEpochs: 2,
		IndependentEpochs: 2, AdaptiveFraction: 0.1, ZeroShotIters: 2, ZeroShotBatch: 8, ZeroShotWidth: 8,
		MWhite: 10, MBlack: 20, Alpha: 0.01, Controls: 2, ControlSamples: 0, Innocents: 2, ClaimStyles: 2,
		// Three epochs on 160 images: the victim answers 28% of the key's originals right, a
		// benign model 13%. The reference check is for models trained to their recipe.
		RefShortfall: 1}
}

// The whole pipeline on a generated set: every stage writes its artefact, results.json and
// report.html hold every row, and a second run reuses every stage.
func TestPipelineResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a dozen small models")
	}
	out := t.TempDir()
	stylePath := filepath.Join(out, "style.png")
	if err := os.WriteFile(stylePath, DefaultStyle, 0o644); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := Logger{Printf: func(f string, a ...any) { logs.WriteString(strings.TrimSpace(sprintf(f, a...)) + "\n") }, Progress: func(string, trainStatus) {}}
	cfg := Config{Data: "synthetic:600", Style: stylePath, Out: filepath.Join(out, "x"), Seed: 3, Profile: tiny(), Command: "test", FalseClaims: true}
	res, err := Run(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	// The generated set is in colour: the key's colour is measured and gives no warning.
	if res.Colour == nil || res.Colour.Samples == 0 || res.Colour.Original < 2 || len(res.Warnings) != 0 {
		t.Errorf("colour %+v, warnings %q", res.Colour, res.Warnings)
	}
	if res.Estimate == nil || res.Estimate.Total <= 0 || res.Estimate.Rates.Train <= 0 {
		t.Errorf("estimate %+v", res.Estimate)
	}
	// 60 training images per class: the owner's 40 and the thief's 20, disjoint.
	if res.Data["thief_images"] != 200 || !strings.Contains(fmt.Sprint(res.Data["thief_data"]), "training split") {
		t.Errorf("thief's data: %v images, %v; want 200 unused training images", res.Data["thief_images"], res.Data["thief_data"])
	}
	paper := 0
	for _, a := range steal.Attacks() {
		if !a.Washing {
			paper++
		}
	}
	if len(res.Rows) != paper+len(steal.Chains())+2 {
		t.Fatalf("%d rows, want %d attacks, %d multi-stage thefts and 2 innocents", len(res.Rows), paper, len(steal.Chains()))
	}
	for _, r := range res.Rows {
		if r.Kind == "constant" {
			// Served over HTTP: black-box only, and no working classifier.
			if r.White != nil || r.Black == nil || r.Black.Verdict != "inconclusive" || r.Black.Stolen {
				t.Errorf("the constant innocent: white %+v, black %+v", r.White, r.Black)
			}
			continue
		}
		if r.Black == nil || r.White == nil {
			t.Errorf("%s: missing verdicts (white %v, black %v)", r.Attack, r.White, r.Black)
		}
		if _, err := os.Stat(filepath.Join(cfg.Out, "suspects", r.Attack+".safetensors")); err != nil {
			t.Error(err)
		}
	}
	// The independent model and two innocents black-box; white-box all but the served one.
	if s := res.Innocents["black"]; s.Tested != 3 || s.Upper95 <= 0 {
		t.Errorf("black-box innocents summary %+v", s)
	}
	if s := res.Innocents["white"]; s.Tested != 2 {
		t.Errorf("white-box innocents summary %+v", s)
	}
	if len(res.Claims) != 3 || res.Claims[1].Tries != 2 || len(res.Claims[1].AllP["black"]) != 2 {
		t.Errorf("false claims: %+v", res.Claims)
	}
	if res.Rows[0].Attack != "copy" || res.Rows[0].Agreement != 1 {
		t.Errorf("first row %+v, want the direct copy agreeing fully", res.Rows[0])
	}
	// The models of this tiny world barely learn, so only the white-box verdict on the exact
	// copy is certain; verdicts are tested in package verify and by move experiment itself.
	if !res.Rows[0].White.Stolen || res.Config.WhiteFamily != features.GainTop || res.Rows[0].White.M != res.Config.Profile.MWhite {
		t.Errorf("the direct copy was not flagged white-box by the default family (%s): p = %g", res.Config.WhiteFamily, res.Rows[0].White.P)
	}
	if err := RunSweep(context.Background(), cfg, res, Sweep{Name: "m", Values: []float64{5, 10, 20}}, log); err != nil {
		t.Fatal(err)
	}
	// The m sweep re-verifies every suspect with weights at hand white-box: at the table's m
	// (10) it gives the table's verdicts.
	for _, row := range res.Rows {
		pt, ok := res.Sweeps["m"][1].Points["white/"+row.Label]
		switch {
		case row.Served != "":
			if ok {
				t.Errorf("m sweep: the served %s was verified", row.Label)
			}
		case !ok || row.White == nil:
			t.Errorf("m sweep: %s: point %v, table %v", row.Label, ok, row.White)
		case pt.P != row.White.P || pt.Verdict != row.White.Verdict || pt.Stolen != row.Stolen:
			t.Errorf("m sweep at the table's m: %s %+v, the table's p %g (%s)", row.Label, pt, row.White.P, row.White.Verdict)
		}
	}
	// A rate sweep runs the pipeline again per rate, in its own folder.
	if err := RunSweep(context.Background(), cfg, res, Sweep{Name: "rate", Values: []float64{0.5}}, log); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(cfg.Out, "sweep-rate-0.5", "results.json")); err != nil {
		t.Error(err)
	}
	// A style sweep runs the pipeline per style image, in a folder named after it.
	other := filepath.Join(out, "other.png")
	if err := os.WriteFile(other, DefaultStyle, 0o644); err != nil {
		t.Fatal(err)
	}
	sw, err := ParseSweep("style=" + other)
	if err != nil {
		t.Fatal(err)
	}
	logs.Reset()
	if err := RunSweep(context.Background(), cfg, res, sw, log); err != nil {
		t.Fatal(err)
	}
	// The benign models and the innocents never see the watermark: the sweep reuses the
	// experiment's.
	if regexp.MustCompile(`\[(train-benign\d+|owner-same-init-benign\d|innocent-well-trained-1)\] running`).MatchString(logs.String()) ||
		!strings.Contains(logs.String(), "[train-benign1] reused") {
		t.Errorf("the style sweep retrained models that never see the watermark:\n%s", logs.String())
	}
	if it := res.Sweeps["style"]; len(it) != 1 || it[0].Label != "other" || len(it[0].P) < 14 || it[0].Accuracy["victim"] <= 0 {
		t.Errorf("style sweep: %+v", it)
	}
	if _, err := os.Stat(filepath.Join(cfg.Out, "sweep-style-other", "results.json")); err != nil {
		t.Error(err)
	}
	if _, err := ParseSweep("style=" + filepath.Join(out, "missing.jpg")); err == nil || !strings.Contains(err.Error(), "missing.jpg") {
		t.Errorf("a missing style image: %v", err)
	}
	for name, n := range map[string]int{"m": 3, "rate": 1} {
		if len(res.Sweeps[name]) != n || len(res.Sweeps[name][0].P) != 4 {
			t.Errorf("sweep %s: %+v", name, res.Sweeps[name])
		}
	}
	if err := WriteReport(res); err != nil {
		t.Fatal(err)
	}
	html, err := os.ReadFile(filepath.Join(cfg.Out, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Direct-copy", "Independent", "<svg", "data:image/png;base64,", "Sweep: m", "Sweep: rate", "Innocent suspects", "well-trained-1", "False claims"} {
		if !bytes.Contains(html, []byte(want)) {
			t.Errorf("report.html lacks %q", want)
		}
	}
	screenshot(t, filepath.Join(cfg.Out, "report.html"))
	if bytes.Contains(html, []byte(`src="http`)) || bytes.Contains(html, []byte(`href="http`)) || bytes.Contains(html, []byte("<script")) {
		t.Error("report.html refers to the network")
	}
	var table bytes.Buffer
	WriteTable(&table, res)
	t.Logf("\n%s", table.String())

	// Again: every stage is reused and the figures are the same.
	logs.Reset()
	res2, err := Run(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "running") {
		t.Errorf("the second run re-ran stages:\n%s", logs.String())
	}
	a, _ := json.Marshal(res.Rows)
	b, _ := json.Marshal(res2.Rows)
	if !bytes.Equal(a, b) {
		t.Errorf("the resumed run's rows differ:\n%s\n%s", a, b)
	}
	// A changed profile reruns what depends on it, and only that.
	cfg.Profile.QueryEpochs = 1
	logs.Reset()
	if _, err := Run(context.Background(), cfg, log); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"[steal-labelquery] running", "[steal-logitquery] running"} {
		if !strings.Contains(logs.String(), s) {
			t.Errorf("after changing the query epochs, %q is missing:\n%s", s, logs.String())
		}
	}
	if strings.Contains(logs.String(), "[train-victim] running") || strings.Contains(logs.String(), "[embed] running") {
		t.Errorf("changing an attack retrained the victim or re-embedded:\n%s", logs.String())
	}

	// The washing attacks join as suspects after the multi-stage thefts, without re-running
	// anything of the paper's; a served front is verified through it, black-box only.
	cfg.Washing = true
	logs.Reset()
	res3, err := Run(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		stage, ok := strings.CutSuffix(line, "] running")
		if !ok {
			continue
		}
		a, err := steal.Lookup(strings.TrimPrefix(stage, "[steal-"))
		if err != nil || !a.Washing {
			t.Errorf("adding the washing attacks re-ran %s]", stage)
		}
	}
	var washed []string
	for _, r := range res3.Rows {
		a, err := steal.Lookup(r.Attack)
		if err != nil || !a.Washing {
			continue
		}
		washed = append(washed, r.Attack)
		if !r.Stolen || r.Black == nil || (r.White == nil) != (a.Serve != "") || r.Front != a.Serve {
			t.Errorf("washing row %s: stolen %v, front %q, white %v, black %v", r.Attack, r.Stolen, r.Front, r.White, r.Black)
		}
	}
	if len(washed) != len(steal.Attacks())-paper {
		t.Errorf("washing rows %v", washed)
	}

	// The adaptive sweep washes each student with a share of the clean data; share 0 is the
	// student as stolen, verified as in the table.
	if err := RunSweep(context.Background(), cfg, res3, Sweep{Name: "adaptive", Values: []float64{0, 0.5}}, log); err != nil {
		t.Fatal(err)
	}
	items := res3.Sweeps["adaptive"]
	if len(items) != 2 {
		t.Fatalf("adaptive sweep: %+v", items)
	}
	for _, row := range res3.Rows {
		if !slices.Contains(adaptiveStudents, row.Attack) {
			continue
		}
		if p, ok := items[0].P["black/"+row.Label]; !ok || p != row.Black.P {
			t.Errorf("adaptive 0, %s: black p %v, the table's %v", row.Attack, p, row.Black.P)
		}
		// White-box too: the table's family (style-gain-top by default), not the paper's
		// weight-gradient classifier.
		if row.White == nil {
			t.Errorf("adaptive 0, %s: the table has no white-box verdict", row.Attack)
		} else if p, ok := items[0].P["white/"+row.Label]; !ok || p != row.White.P {
			t.Errorf("adaptive 0, %s: white p %v, the table's %v (%s)", row.Attack, p, row.White.P, cfg.WhiteFamily)
		}
		for _, it := range items {
			if _, ok := it.DeltaMu["black/"+row.Label]; !ok || it.Accuracy[row.Label] <= 0 {
				t.Errorf("adaptive %g, %s: delta-mu or accuracy missing: %+v", it.Value, row.Attack, it)
			}
		}
		if _, err := os.Stat(filepath.Join(cfg.Out, "adaptive", row.Attack+"-0.5.safetensors")); err != nil {
			t.Error(err)
		}
	}
	var sweepTable bytes.Buffer
	writeSweeps(&sweepTable, res3)
	if !strings.Contains(sweepTable.String(), "sweep of adaptive: delta-mu") {
		t.Errorf("the sweep table lacks delta-mu:\n%s", sweepTable.String())
	}

	// BadNets beside MOVE: its own victim, stolen by the paper's attacks, each suspect and every
	// model that never saw a victim verified by the trigger test; MOVE's stages are reused.
	cfg.Defences = []string{BadNets, DatasetInference, EWE, MovePatch, Conferrable}
	logs.Reset()
	res4, err := Run(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "[train-victim] running") || strings.Contains(logs.String(), "[steal-copy] running") {
		t.Errorf("adding a defence re-ran MOVE's stages:\n%s", logs.String())
	}
	bn := res4.Defences[BadNets]
	if bn == nil || bn.Victim.Accuracy <= 0 {
		t.Fatalf("badnets: %+v", bn)
	}
	var stolen, clean int
	for _, row := range bn.Rows {
		if row.Stolen {
			stolen++
			if _, err := os.Stat(filepath.Join(cfg.Out, BadNets, "suspects", row.Attack+".safetensors")); err != nil {
				t.Error(err)
			}
		} else {
			clean++
		}
		if !(row.P >= 0 && row.P <= 1) {
			t.Errorf("badnets %s: p %g", row.Attack, row.P)
		}
	}
	if stolen != 7 || clean != 3 {
		t.Errorf("badnets: %d stolen and %d clean suspects, want the 7 thefts of the paper and 3 that saw no victim", stolen, clean)
	}
	for _, row := range bn.Rows {
		if row.Attack == "innocent-constant-1" && (row.Verdict || row.Outcome != "inconclusive") {
			t.Errorf("badnets convicted the constant answer: %+v", row)
		}
	}
	// Entangled watermarks: a victim of its own, the same thefts and suspects as BadNets.
	if ew := res4.Defences[EWE]; ew == nil || ew.Victim.Accuracy <= 0 || len(ew.Rows) != len(bn.Rows) {
		t.Fatalf("ewe: %+v", ew)
	} else if _, err := os.Stat(filepath.Join(cfg.Out, EWE, "suspects", "distill.safetensors")); err != nil {
		t.Error(err)
	}
	di := res4.Defences[DatasetInference]
	if di == nil || len(di.Rows) != len(res4.Rows) {
		t.Fatalf("dataset inference: %+v", di)
	}
	// White-box dataset inference reads weights: every suspect but the served ones.
	served := 0
	for _, row := range res4.Rows {
		if row.Served != "" || row.Front != "" {
			served++
		}
	}
	if diw := res4.Defences[DatasetInference+"-white"]; diw == nil || len(diw.Rows) != len(res4.Rows)-served || served == 0 {
		t.Fatalf("white-box dataset inference, %d served suspects: %+v", served, diw)
	}
	for _, d := range []*DefenceResult{di, res4.Defences[DatasetInference+"-white"]} {
		for _, row := range d.Rows {
			if !(row.P >= 0 && row.P <= 1) || row.Outcome == "" {
				t.Errorf("%s %s: p %g, verdict %q", d.Name, row.Attack, row.P, row.Outcome)
			}
			if row.Attack == "innocent-constant-1" && row.Outcome != "inconclusive" {
				t.Errorf("%s: the constant answer is %q, want inconclusive", d.Name, row.Outcome)
			}
		}
	}
	// Conferrable examples: MOVE's own victim and suspects, every suspect tested (served ones
	// too: the test reads answers); the fingerprint's stage records how its makers answer.
	cf := res4.Defences[Conferrable]
	if cf == nil || len(cf.Rows) != len(res4.Rows) {
		t.Fatalf("conferrable: %+v", cf)
	}
	for _, row := range cf.Rows {
		if !(row.P >= 0 && row.P <= 1) || row.Outcome == "" {
			t.Errorf("conferrable %s: p %g, verdict %q", row.Attack, row.P, row.Outcome)
		}
		if row.Attack == "innocent-constant-1" && row.Outcome != "inconclusive" {
			t.Errorf("conferrable: the constant answer is %q, want inconclusive", row.Outcome)
		}
	}
	if fit, ok := cf.Setup.(map[string]any)["fit"].(conferrableFit); !ok || fit.Examples == 0 || !(fit.Victim > fit.References) {
		t.Errorf("conferrable fit: %+v", cf.Setup)
	}
	if _, err := os.Stat(filepath.Join(cfg.Out, Conferrable, "fingerprint.json")); err != nil {
		t.Error(err)
	}
	// MOVE's patch variant: its own victim on the training set with a white square, not the
	// style, on the very images the key styles; MOVE's benign models, meta recipe and test.
	for _, mode := range []string{"white", "black"} {
		pv := res4.Defences[MovePatch+"-"+mode]
		if pv == nil || pv.Victim.Accuracy <= 0 {
			t.Fatalf("%s-%s: %+v", MovePatch, mode, pv)
		}
		var stolen, clean int
		for _, row := range pv.Rows {
			if row.Stolen {
				stolen++
			} else {
				clean++
			}
			if !(row.P >= 0 && row.P <= 1) || row.Outcome == "" {
				t.Errorf("%s-%s %s: p %g, verdict %q", MovePatch, mode, row.Attack, row.P, row.Outcome)
			}
		}
		// White-box reads weights: not the served constant answer.
		if wantClean := map[string]int{"white": 2, "black": 3}[mode]; stolen != 7 || clean != wantClean {
			t.Errorf("%s-%s: %d stolen and %d clean suspects, want 7 and %d", MovePatch, mode, stolen, clean, wantClean)
		}
	}
	for _, f := range []string{"victim.safetensors", "meta-white.safetensors", "meta-black.safetensors", "suspects/copy.safetensors"} {
		if _, err := os.Stat(filepath.Join(cfg.Out, MovePatch, f)); err != nil {
			t.Error(err)
		}
	}
	if regexp.MustCompile(`\[train-benign\d+\] running`).MatchString(logs.String()) {
		t.Errorf("the patch variant retrained the benign models:\n%s", logs.String())
	}
	var cmpTable bytes.Buffer
	writeDefences(&cmpTable, res4)
	if !strings.Contains(cmpTable.String(), "badnets p") || !strings.Contains(cmpTable.String(), "ewe p") || !strings.Contains(cmpTable.String(), "dataset-inference p") || !strings.Contains(cmpTable.String(), "move-patch-black p") || !strings.Contains(cmpTable.String(), "conferrable p") || !strings.Contains(cmpTable.String(), "Direct-copy") {
		t.Errorf("comparison table:\n%s", cmpTable.String())
	}
	t.Logf("\n%s", cmpTable.String())
	// The detection studies on both victims, the ablations and three white-box families, in
	// the table.
	cfg.Detect, cfg.Ablations, cfg.Features = true, true, []string{"weights", "weights-raw", "input-grad", "weights-same-init", "input-grad-students", features.GradSimilarity, features.GainTop, GainStudentsFamily, GainGatedFamily}
	cfg.Draws = 4
	if _, err := Run(context.Background(), cfg, log); err == nil || !strings.Contains(err.Error(), "draws") {
		t.Errorf("draws of style-gain-top's fixed images: %v", err)
	}
	cfg.WhiteFamily = SameInitFamily // a classifier's test over draws
	logs.Reset()
	res5, err := Run(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	// Dataset inference's tests are stages: the same suspects are not walked again.
	if strings.Contains(logs.String(), "fitting the confidence regressor") || regexp.MustCompile(`\[di-\w+-\S+\] running`).MatchString(logs.String()) {
		t.Errorf("dataset inference ran again:\n%s", logs.String())
	}
	if a, b := res4.Defences[DatasetInference+"-white"].Rows, res5.Defences[DatasetInference+"-white"].Rows; len(a) != len(b) || a[0] != b[0] {
		t.Errorf("reused white-box dataset inference: %+v, then %+v", a, b)
	}
	for _, row := range res5.Rows {
		f := row.Families
		if res5.Config.WhiteFamily != SameInitFamily || f[SameInitFamily] != row.White {
			t.Errorf("%s: the %s family is not the table's white-box verdict (%q)", row.Attack, SameInitFamily, res5.Config.WhiteFamily)
		}
		if (f["weights"] == nil) != (row.White == nil) || f["weights"] == row.White && row.White != nil {
			t.Errorf("%s: the paper's classifier's verdict %+v beside the table's %+v", row.Attack, f["weights"], row.White)
		}
		if raw := row.Ablations[AblationRaw]; (raw == nil) != (f["weights-raw"] == nil) || raw != nil && raw.P != f["weights-raw"].P {
			t.Errorf("%s: the raw-gradient family and ablation differ: %+v, %+v", row.Attack, f["weights-raw"], raw)
		}
		if local := row.Served == "" && row.Front == ""; local != (f["input-grad"] != nil) || local != (f["input-grad-students"] != nil) || local != (f[features.GradSimilarity] != nil) {
			t.Errorf("%s (local %v): input-grad verdicts %+v, with students %+v, similarity %+v", row.Attack, local, f["input-grad"], f["input-grad-students"], f[features.GradSimilarity])
		}
		if sim := f[features.GradSimilarity]; sim != nil && (sim.M != res5.Config.Profile.MWhite || sim.N != sim.M || len(sim.ProbSuspect) != sim.M) {
			t.Errorf("%s: similarity verdict read %d images (n %d, %d scores), want m = %d", row.Attack, sim.M, sim.N, len(sim.ProbSuspect), res5.Config.Profile.MWhite)
		}
		// style-gain-top reads answers: every suspect with a model file, on the m top-ranked images.
		if top := f[features.GainTop]; (top != nil) != (row.Served == "" && row.Front == "") || top != nil && (top.M != res5.Config.Profile.MWhite || top.N != top.M) {
			t.Errorf("%s: style-gain-top verdict %+v, want one on m = %d images for each local suspect", row.Attack, top, res5.Config.Profile.MWhite)
		}
		// style-gain-students and -gated: the same test, ranked with the owner's students of
		// the victim (and, gated, beyond the same-init benign models too).
		for _, fam := range []string{GainStudentsFamily, GainGatedFamily} {
			if top := f[fam]; (top != nil) != (row.Served == "" && row.Front == "") || top != nil && (top.M != res5.Config.Profile.MWhite || top.N != top.M) {
				t.Errorf("%s: %s verdict %+v, want one on m = %d images for each local suspect", row.Attack, fam, top, res5.Config.Profile.MWhite)
			}
		}
		if row.Attack == "copy" && f[features.GradSimilarity] != nil && math.Abs(f[features.GradSimilarity].ProbSuspect[0]-1) > 1e-6 {
			t.Errorf("the copy's input gradients are the victim's: similarity %g, want 1", f[features.GradSimilarity].ProbSuspect[0])
		}
	}
	for _, f := range []string{"input-grad", "weights", "input-grad-students"} {
		if _, ok := res5.Meta["white-"+f]; !ok {
			t.Errorf("no %s meta-classifier recorded: %v", f, slices.Collect(maps.Keys(res5.Meta)))
		}
	}
	owner := 0
	for _, m := range res5.Models {
		if strings.HasPrefix(m.File, "owner/") {
			owner++
			if _, err := os.Stat(filepath.Join(cfg.Out, m.File)); err != nil {
				t.Error(err)
			}
		}
	}
	if owner != 6 { // two benign models from the victim's initial weights, four students
		t.Errorf("%d owner's models recorded, want 6: %+v", owner, res5.Models)
	}
	// The white-box verdict's test over 4 draws of the images, the verdict's first.
	innocents := 0
	for _, row := range res5.Rows {
		v := row.White
		if v == nil {
			continue
		}
		first := 0
		if v.P < res5.Config.Profile.Alpha {
			first = 1
		}
		if v.Draws != 4 || v.DrawsFlagged < first || v.DrawsFlagged > 3+first || v.DrawsMedianP <= 0 || v.DrawsMedianP > 1 {
			t.Errorf("%s: white-box p %g over draws: %d of %d flagged, median p %g", row.Attack, v.P, v.DrawsFlagged, v.Draws, v.DrawsMedianP)
		}
		if !row.Stolen && v.Verdict != verify.Inconclusive {
			innocents++
		}
	}
	if s := res5.Innocents[features.White]; s.DrawInnocents != innocents || s.DrawRate < 0 || s.DrawRateUpper95 < s.DrawRate || s.DrawWorst > 1 {
		t.Errorf("innocents over draws (%d working innocents): %+v", innocents, s)
	}
	var dr bytes.Buffer
	writeDraws(&dr, res5)
	if !strings.Contains(dr.String(), "on 4 draws of m = ") || !strings.Contains(dr.String(), "Direct-copy") {
		t.Errorf("draws table:\n%s", dr.String())
	}
	t.Logf("\n%s", dr.String())
	var fam bytes.Buffer
	writeFamilies(&fam, res5)
	if !strings.Contains(fam.String(), "input-grad") || !strings.Contains(fam.String(), "Direct-copy") {
		t.Errorf("families table:\n%s", fam.String())
	}
	t.Logf("\n%s", fam.String())
	var pw bytes.Buffer
	writePower(&pw, res5)
	if !strings.Contains(pw.String(), "black gain (n)") || !strings.Contains(pw.String(), "Direct-copy") || strings.Contains(pw.String(), "Independent") {
		t.Errorf("power table:\n%s", pw.String())
	}
	t.Logf("\n%s", pw.String())
	for _, row := range res5.Rows {
		d, raw := row.Ablations[AblationDirect], row.Ablations[AblationRaw]
		if d == nil || d.M != res5.Config.Profile.MBlack || (row.Served == "" && row.Front == "" && raw == nil) {
			t.Errorf("%s: ablations %+v", row.Attack, row.Ablations)
		}
	}
	var abl bytes.Buffer
	writeAblations(&abl, res5)
	if !strings.Contains(abl.String(), "white raw p") {
		t.Errorf("ablation table:\n%s", abl.String())
	}
	t.Logf("\n%s", abl.String())
	if len(res5.Detections) != 3 || res5.Detections[0].Victim != "benign" || res5.Detections[1].Victim != "move" || res5.Detections[2].Victim != BadNets {
		t.Fatalf("detections: %+v", res5.Detections)
	}
	for _, d := range res5.Detections {
		if d.STRIP == nil || len(d.STRIP.Marked) == 0 || d.NC == nil || len(d.NC.Norms) < 2 || d.Saliency == nil || d.Saliency.RegionArea <= 0 {
			t.Errorf("detection on %s: %+v", d.Victim, d)
		}
		if _, err := os.Stat(filepath.Join(cfg.Out, d.Picture)); err != nil {
			t.Error(err)
		}
	}
	var detTable bytes.Buffer
	writeDetections(&detTable, res5)
	if !strings.Contains(detTable.String(), "anomaly index") {
		t.Errorf("detection table:\n%s", detTable.String())
	}
	t.Logf("\n%s", detTable.String())
	// style-gain-top as the table's white-box family: the white-box column is that family's
	// verdict (the same test as its column beside), for the suspects whose weights are at hand,
	// and the claimants test with it too.
	cfg.WhiteFamily, cfg.Detect, cfg.Ablations, cfg.Draws, cfg.Defences = features.GainTop, false, false, 1, nil
	cfg.Features = []string{features.GainTop, "weights"}
	cfg.InnocentStudents = true
	res6, err := Run(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	// The innocent students: one of the independent control by each student theft, innocent,
	// each with a model file made from that teacher, verified like every other suspect.
	var students []string
	for _, row := range res6.Rows {
		if row.Kind != innocent.Student {
			continue
		}
		students = append(students, strings.TrimPrefix(row.Attack, "innocent-student-"))
		m, info, err := modelfile.Load(filepath.Join(cfg.Out, row.File), modelfile.ONNXDefaults{})
		if err != nil {
			t.Fatal(err)
		}
		if row.Stolen || row.White == nil || row.Black == nil || m == nil || !strings.Contains(info.Data, "independent control") {
			t.Errorf("innocent student %s: stolen %v, verdicts %v %v, provenance %q", row.Attack, row.Stolen, row.White, row.Black, info.Data)
		}
	}
	if !slices.Equal(students, adaptiveStudents) {
		t.Errorf("innocent students %v, want one by each of %v", students, adaptiveStudents)
	}
	for i, row := range res6.Rows {
		if row.Kind == innocent.Student {
			continue // new in this run
		}
		local := row.Served == "" && row.Front == ""
		top, before := row.Families[features.GainTop], res5.Rows[i].Families[features.GainTop]
		if local != (row.White != nil) || top != row.White {
			t.Errorf("%s (local %v): white-box verdict %+v, style-gain-top %+v", row.Attack, local, row.White, top)
		}
		if row.White != nil && (before == nil || row.White.P != before.P || row.White.M != res6.Config.Profile.MWhite) {
			t.Errorf("%s: the table's style-gain-top p %g on %d images, the family's column gave %+v", row.Attack, row.White.P, row.White.M, before)
		}
		if w := row.Families["weights"]; local && (w == nil || w == row.White) {
			t.Errorf("%s: the paper's classifier's verdict %+v beside the table's %+v", row.Attack, w, row.White)
		}
	}
	for _, c := range res6.Claims {
		if w := c.Verdicts[features.White]; w != nil && w.M != res6.Config.Profile.MWhite {
			t.Errorf("claim %s: white-box verdict on %d images, want the family's m = %d", c.Scenario, w.M, res6.Config.Profile.MWhite)
		}
	}
	if len(res6.Claims) != 3 || res6.Claims[0].Verdicts[features.White] == nil {
		t.Errorf("claims under style-gain-top: %+v", res6.Claims)
	}
	if _, err := Run(context.Background(), Config{Data: cfg.Data, Style: cfg.Style, Out: t.TempDir(), Profile: tiny(), Defences: []string{"dataset-magic"}}, log); err == nil ||
		!strings.Contains(err.Error(), "dataset-magic") {
		t.Errorf("an unknown defence: %v", err)
	}
}

var sprintf = fmt.Sprintf

type trainStatus = train.Status

// screenshot renders the report with headless Chromium, when installed, and checks that the
// page drew something: a tall image with many colours (tables, plots, images), not a blank or
// an error page.
func screenshot(t *testing.T, html string) {
	bin := ""
	for _, b := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(b); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		t.Log("no headless Chromium: report screenshot skipped")
		return
	}
	png := filepath.Join(t.TempDir(), "report.png")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--screenshot="+png, "--window-size=1200,2400", "file://"+html)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	f, err := os.Open(png)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := imgpng.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	colours := map[[3]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 4 {
		for x := b.Min.X; x < b.Max.X; x += 4 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colours[[3]uint32{r >> 12, g >> 12, bl >> 12}] = true
		}
	}
	if b.Dy() < 2000 || len(colours) < 50 {
		t.Errorf("the rendered report is %dx%d with %d colours: blank or broken", b.Dx(), b.Dy(), len(colours))
	}
}

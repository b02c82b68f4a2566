package experiment

import (
	"crypto/sha256"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"text/tabwriter"

	"move/internal/badnets"
	"move/internal/classifier"
	"move/internal/data"
	"move/internal/datasetinference"
	"move/internal/ewe"
	"move/internal/modelfile"
	"move/internal/models"
	"move/internal/nn"
	"move/internal/stats"
	"move/internal/steal"
	"move/internal/tensor"
	"move/internal/train"
)

// Baseline defences the experiment can compare MOVE with (Config.Defences).
const (
	BadNets          = "badnets"
	DatasetInference = "dataset-inference"
	EWE              = "ewe"
)

// Defences are the baselines by name, and MOVE's patch-based variant (MovePatch).
var Defences = []string{BadNets, DatasetInference, EWE, MovePatch, Conferrable}

// DefenceResult is one baseline defence's run: its own watermarked victim, the registry's
// attacks against that victim, and its verification of every suspect.
type DefenceResult struct {
	Name   string       `json:"name"`
	Victim ModelFigure  `json:"victim"`
	Setup  any          `json:"setup,omitempty"` // the defence's own settings: BadNets' trigger, dataset inference's walk and regressor
	Rows   []DefenceRow `json:"rows"`
}

// DefenceRow is one suspect under a baseline defence.
type DefenceRow struct {
	Attack    string  `json:"attack"`
	Label     string  `json:"label"`
	Stolen    bool    `json:"truly_stolen"`
	Accuracy  float64 `json:"accuracy"`
	Agreement float64 `json:"agreement"`
	P         float64 `json:"p_value"`
	DeltaMu   float64 `json:"delta_mu"`
	Verdict   bool    `json:"stolen"` // the defence's verdict of stolen
	// Outcome is the verdict in words: stolen, not stolen, or inconclusive (a suspect that is
	// no working classifier on the test images, as MOVE's verdict rules).
	Outcome string `json:"verdict"`
	// Success is the share of triggered images the suspect answered with the target class
	// (BadNets' watermark success rate; 0 for defences without a trigger).
	Success float64 `json:"trigger_success"`
}

// defences runs each baseline of Config.Defences after MOVE's verification.
func (r *runner) defences() error {
	for _, d := range r.cfg.Defences {
		var err error
		switch d {
		case BadNets:
			err = r.badNets()
		case DatasetInference:
			err = r.datasetInference()
		case EWE:
			err = r.entangled()
		case MovePatch:
			err = r.movePatch()
		case Conferrable:
			err = r.conferrableFingerprint()
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// badNets watermarks the owner's clean training data with a patch trigger at the profile's
// rate (relabelled to class 0), trains a victim on it with MOVE's victim recipe and seed,
// steals it with each of the paper's attacks (their recipes and seeds as against MOVE's
// victim; the independent control and the innocents never touch a victim, so MOVE's are
// reused), and verifies every suspect with the trigger test against MOVE's reference.
func (r *runner) badNets() error {
	p := r.cfg.Profile
	tr := badnets.DefaultTrigger(r.size)
	res := &DefenceResult{Name: BadNets, Setup: tr}
	conf := map[string]any{"arch": p.Arch, "epochs": p.Epochs, "seed": r.victimSeed(), "rate": p.Rate, "trigger": tr, "upstream": r.base}
	desc := fmt.Sprintf("the owner's clean data, %g of it stamped with a %dx%d trigger and relabelled to class %d", p.Rate, tr.Size, tr.Size, tr.Target)
	role := "victim watermarked with BadNets (a patch trigger, labels changed)"
	mark := func() (*data.Set, error) {
		marked, _, err := badnets.Mark(r.clean, tr, p.Rate, r.cfg.Seed)
		return marked, err
	}
	victim, err := r.defenceVictim(BadNets, conf, mark, nil, desc, role, &res.Victim)
	if err != nil {
		return err
	}
	_, ref, err := r.benignModels()
	if err != nil {
		return err
	}
	opts := badnets.Options{M: p.MBlack, Alpha: p.Alpha, MinDelta: p.MinDelta, Seed: r.cfg.Seed + 7}
	return r.triggerTests(res, victim, ref, tr, opts)
}

// triggerTests steals a trigger-watermarked victim (defenceSuspects), runs the trigger test
// (badnets.Verify) on every suspect against the reference, and records the defence.
func (r *runner) triggerTests(res *DefenceResult, victim, ref classifier.Model, tr badnets.Trigger, opts badnets.Options) error {
	err := r.defenceSuspects(res.Name, victim, func(row DefenceRow, _ Row, s classifier.Model) error {
		v, err := badnets.Verify(s, ref, r.test, tr, opts)
		if err != nil {
			return fmt.Errorf("%s verification of %s: %w", res.Name, row.Attack, err)
		}
		row.P, row.DeltaMu, row.Verdict, row.Outcome, row.Success = v.P, v.DeltaMu, v.Stolen, v.Verdict, v.SuccessRate
		res.Rows = append(res.Rows, row)
		if row.Stolen {
			r.log.Printf("%s %s: accuracy %.2f%%, trigger success %.0f%%, p %.3g", res.Name, row.Attack, 100*row.Accuracy, 100*row.Success, row.P)
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.addDefence(res)
	return nil
}

// entangled watermarks the owner's training set with entangled watermarks (Jia et al.):
// the BadNets trigger on the profile's rate of source-class images added to it, labelled
// class 0, and the victim trained with the SNNL term that entangles them with class 0's clean
// images (MOVE's victim recipe and seed otherwise); it is stolen by the same attacks and every
// suspect is verified by the trigger test on stamped source-class test images.
func (r *runner) entangled() error {
	p := r.cfg.Profile
	w := ewe.Default(r.size, p.Rate)
	res := &DefenceResult{Name: EWE, Setup: w}
	conf := map[string]any{"arch": p.Arch, "epochs": p.Epochs, "seed": r.victimSeed(), "watermark": w, "data": r.stageHash("data")}
	desc := fmt.Sprintf("the owner's clean data and %g of its size in class-%d images stamped with a %dx%d trigger, labelled class %d, entangled (SNNL weight %g)",
		w.Rate, w.Source, w.Trigger.Size, w.Trigger.Size, w.Trigger.Target, w.Kappa)
	var isWM []bool
	mark := func() (*data.Set, error) {
		marked, wm, err := ewe.Mark(r.clean, w, r.cfg.Seed)
		isWM = wm
		return marked, err
	}
	lossFor := func(m models.Model, marked *data.Set) (lossFunc, error) { return ewe.Loss(m, marked, isWM, w) }
	victim, err := r.defenceVictim(EWE, conf, mark, lossFor, desc, "victim watermarked with entangled watermarks (a patch trigger on one class, entangled with the target class)", &res.Victim)
	if err != nil {
		return err
	}
	_, ref, err := r.benignModels()
	if err != nil {
		return err
	}
	opts := badnets.Options{M: p.MBlack, Alpha: p.Alpha, MinDelta: p.MinDelta, Seed: r.cfg.Seed + 7, Sources: []int{w.Source}}
	if n := r.classCount(w.Source); n < opts.M {
		opts.M = n // a small test set: every source-class image
	}
	return r.triggerTests(res, victim, ref, w.Trigger, opts)
}

// classCount is how many test images are of class c.
func (r *runner) classCount(c int) int {
	n := 0
	for _, l := range r.test.Labels {
		if l == c {
			n++
		}
	}
	return n
}

// addDefence records a defence's run in the results.
func (r *runner) addDefence(res *DefenceResult) {
	if r.res.Defences == nil {
		r.res.Defences = map[string]*DefenceResult{}
	}
	r.res.Defences[res.Name] = res
}

// lossFunc is a training loss (train.Options.Loss).
type lossFunc = func(tp *nn.Tape, logits *nn.Var, x *tensor.Tensor, idx []int) *nn.Var

// defenceVictim trains (stage NAME-victim) the victim of a defence with a watermark of its own:
// MOVE's victim recipe and seed on the training set mark returns, saved as OUT/NAME/victim;
// with the loss lossFor returns for the network and that set when lossFor is not nil (the
// cross-entropy with its labels otherwise).
func (r *runner) defenceVictim(name string, conf map[string]any, mark func() (*data.Set, error), lossFor func(models.Model, *data.Set) (lossFunc, error),
	dataDesc, role string, fig *ModelFigure) (classifier.Model, error) {
	p := r.cfg.Profile
	if err := os.MkdirAll(r.path(name, "suspects"), 0o755); err != nil {
		return classifier.Model{}, err
	}
	vfile := r.path(name, "victim.safetensors")
	seed := r.victimSeed()
	err := r.stage(name+"-victim", conf, []string{vfile}, fig, func() error {
		marked, err := mark()
		if err != nil {
			return err
		}
		m, err := models.New(p.Arch, len(r.clean.Classes), seed)
		if err != nil {
			return err
		}
		info := r.modelInfo(name, dataDesc, seed)
		o := train.Options{Checkpoint: vfile + ".ckpt", Info: info, Progress: func(s train.Status) { r.log.Progress(name+"-victim", s) }}
		if lossFor != nil {
			if o.Loss, err = lossFor(m, marked); err != nil {
				return err
			}
		}
		fr, err := train.Fit(r.ctx, m, marked, r.recipe(p.Epochs, seed), o)
		if err != nil {
			return err
		}
		if err := modelfile.Save(vfile, m, info, true); err != nil {
			return err
		}
		os.Remove(vfile + ".ckpt")
		*fig = ModelFigure{Name: name + "-victim", File: name + "/victim.safetensors", Accuracy: train.Accuracy(m, r.test, r.norm, 256),
			Seconds: fr.Seconds, Role: role}
		return nil
	})
	if err != nil {
		return classifier.Model{}, err
	}
	r.log.Printf("%s victim: test accuracy %.2f%%", name, 100*fig.Accuracy)
	return r.load(vfile)
}

// defenceSuspects steals a defence's victim with each of the paper's attacks (their recipes
// and seeds as against MOVE's victim; stages NAME-steal-ATTACK, models in OUT/NAME/suspects)
// and visits each theft, then every suspect of MOVE's table that never touched a victim (the
// independent control and the innocents: the same files as in MOVE's table), with its row
// of the defence's table (accuracy and agreement filled), MOVE's row and the model.
func (r *runner) defenceSuspects(name string, victim classifier.Model, visit func(DefenceRow, Row, classifier.Model) error) error {
	src := r.sources()
	for i, a := range steal.Attacks() {
		if a.Washing || !a.Stolen {
			continue
		}
		cfg := r.attackConfig(a, r.cfg.Seed+201+uint64(i))
		set, err := a.TrainingSet(src)
		if err != nil {
			return err
		}
		file := r.path(name, "suspects", a.Name+".safetensors")
		row := DefenceRow{Attack: a.Name, Label: a.Label, Stolen: true}
		stage := name + "-steal-" + a.Name
		err = r.stage(stage, map[string]any{"cfg": cfg, "victim": r.stageHash(name + "-victim")}, []string{file}, &row, func() error {
			st, err := steal.Run(r.ctx, victim, set, len(r.clean.Classes), cfg, nil, func(s train.Status) { r.log.Progress(stage, s) })
			if err != nil {
				return err
			}
			row.Accuracy, row.Agreement, err = steal.Evaluate(classifier.Local(st.Model, r.norm, r.size), victim, r.test)
			if err != nil {
				return err
			}
			info := r.modelInfo(a.Name, a.Summary+" (from the "+name+" victim)", cfg.Train.Seed)
			return modelfile.Save(file, st.Model, info, true)
		})
		if err != nil {
			return err
		}
		s, err := r.load(file)
		if err != nil {
			return err
		}
		if err := visit(row, Row{Attack: a.Name, Label: a.Label, Stolen: true, File: file}, s); err != nil {
			return err
		}
	}
	for _, mr := range r.res.Rows {
		if err := r.ctx.Err(); err != nil {
			return err
		}
		if mr.Stolen {
			continue
		}
		s, stop, err := r.suspectModel(mr)
		if err != nil {
			return err
		}
		err = visit(DefenceRow{Attack: mr.Attack, Label: mr.Label, Accuracy: mr.Accuracy}, mr, s)
		stop()
		if err != nil {
			return err
		}
	}
	return nil
}

// writeDefences prints the comparison: per suspect, MOVE's p-values in both modes beside
// each baseline's, and each defence's harmlessness (its victim against the benign models).
func writeDefences(w io.Writer, res *Results) {
	if len(res.Defences) == 0 {
		return
	}
	names := slices.Sorted(maps.Keys(res.Defences))
	v, b, n, ok := Harmlessness(res)
	fmt.Fprintln(w, "\ndefences compared on the same attacks (p-values; * a verdict of stolen, ? inconclusive: no working classifier):")
	if ok {
		fmt.Fprintf(w, "  move: victim %.2f%%, %+.2f points from the %d benign models\n", 100*v, 100*(v-b), n)
	}
	for _, d := range names {
		if ok {
			fmt.Fprintf(w, "  %s: victim %.2f%%, %+.2f points from the benign models\n", d, 100*res.Defences[d].Victim.Accuracy, 100*(res.Defences[d].Victim.Accuracy-b))
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "suspect\tstolen\tmove white p\tmove black p"
	for _, d := range names {
		head += fmt.Sprintf("\t%s acc %%\t%s dmu\t%s p", d, d, d)
		if d == BadNets || d == EWE {
			head += "\ttrigger %"
		}
	}
	fmt.Fprintln(tw, head+"\t")
	byName := map[string]map[string]DefenceRow{}
	for _, d := range names {
		byName[d] = map[string]DefenceRow{}
		for _, row := range res.Defences[d].Rows {
			byName[d][row.Attack] = row
		}
	}
	star := func(p float64, verdict string) string {
		switch verdict {
		case "stolen":
			return fmt.Sprintf("%.3g*", p)
		case "inconclusive":
			return fmt.Sprintf("%.3g?", p)
		}
		return fmt.Sprintf("%.3g", p)
	}
	for _, r := range res.Rows {
		line := fmt.Sprintf("%s\t%v\t", r.Label, r.Stolen)
		for _, v := range []*Verdict{r.White, r.Black} {
			if v == nil {
				line += "-\t"
			} else {
				line += star(v.P, v.Verdict) + "\t"
			}
		}
		found := false
		for _, d := range names {
			dr, ok := byName[d][r.Attack]
			switch {
			case ok:
				found = true
				line += fmt.Sprintf("%.2f\t%+.3f\t%s\t", 100*dr.Accuracy, dr.DeltaMu, star(dr.P, dr.Outcome))
			default:
				line += "-\t-\t-\t"
			}
			if d == BadNets || d == EWE {
				if ok {
					line += fmt.Sprintf("%.0f\t", 100*dr.Success)
				} else {
					line += "-\t"
				}
			}
		}
		if found {
			fmt.Fprintln(tw, line)
		}
	}
	tw.Flush()
}

// diInnocents is how many innocents of the suite dataset inference tests (besides the
// independent control): its walks are the costliest test of the experiment.
const diInnocents = 19

// diFit is what dataset inference learnt on the victim in one mode: the regressor's accuracy
// on the images it was fitted on, and the victim's accuracy on the owner's training images
// and on the test set, whose gap is the signal dataset inference reads.
type diFit struct {
	RegressorAccuracy float64 `json:"regressor_accuracy"`
	TrainAccuracy     float64 `json:"victim_train_accuracy"`
	TestAccuracy      float64 `json:"victim_test_accuracy"`
}

// datasetInference runs dataset inference (Maini et al.) against MOVE's own victim and
// suspects, in both settings: it needs no watermark, only the owner's private training
// images. In each mode the confidence regressor learns on the victim, from its distances
// (black-box: blind walks; white-box: MinGD), to tell 200 of the owner's training images
// from 200 test images (fewer on a smaller data set); each suspect is then tested on other
// private and public images, m of each (the profile's black-box or white-box m, as MOVE):
// every theft, the independent control and the first diInnocents innocents; white-box
// skips suspects served over HTTP (no weights). Each suspect's test is a stage of its own.
func (r *runner) datasetInference() error {
	victim, err := r.load(r.path("victim.safetensors"))
	if err != nil {
		return err
	}
	for _, mode := range []string{"black", "white"} {
		if err := r.datasetInferenceMode(victim, mode); err != nil {
			return fmt.Errorf("dataset inference (%s-box): %w", mode, err)
		}
	}
	return nil
}

// datasetInferenceMode is datasetInference in one mode: the result is DatasetInference
// (black-box) or DatasetInference+"-white".
func (r *runner) datasetInferenceMode(victim classifier.Model, mode string) error {
	p := r.cfg.Profile
	name := DatasetInference
	m := p.MBlack
	if mode == "white" {
		name, m = DatasetInference+"-white", p.MWhite
	}
	res := &DefenceResult{Name: name}
	for _, f := range r.res.Models {
		if f.Name == "victim" {
			res.Victim = f
		}
	}
	fitN := min(200, r.clean.Len()-m, r.test.Len()-m) // 200 of each unless the data set is smaller
	if fitN < 10 {
		return fmt.Errorf("needs %d + 10 training and test images, has %d and %d", m, r.clean.Len(), r.test.Len())
	}
	privFit, privTest, err := datasetinference.Split(r.clean, fitN, m, r.cfg.Seed+11)
	if err != nil {
		return fmt.Errorf("the owner's images: %w", err)
	}
	pubFit, pubTest, err := datasetinference.Split(r.test, fitN, m, r.cfg.Seed+12)
	if err != nil {
		return fmt.Errorf("the public images: %w", err)
	}
	walk := datasetinference.Options{Seed: r.cfg.Seed + 13}
	var gd datasetinference.GDOptions
	distances := func(c classifier.Model) (datasetinference.Features, error) {
		if mode == "white" {
			return datasetinference.MinGD(c, gd)
		}
		return datasetinference.BlindWalk(c, walk), nil
	}
	h, w := r.test.H, r.test.W
	fitConf := map[string]any{"victim": r.stageHash("train-victim"), "data": r.stageHash("data"), "mode": mode, "fit": fitN, "m": m,
		"walk": walk, "gd": gd, "seed": r.cfg.Seed}
	var reg *datasetinference.Regressor
	var regAcc float64
	fitReg := func() error { // lazily: only when a suspect's test is not reused
		if reg != nil {
			return nil
		}
		r.log.Printf("dataset inference (%s-box): fitting the confidence regressor on the victim", mode)
		f, err := distances(victim)
		if err != nil {
			return err
		}
		reg, regAcc, err = datasetinference.FitRegressor(f, privFit, pubFit, h, w, r.cfg.Seed+14)
		return err
	}
	var fit diFit
	if err := r.stage("di-"+mode+"-fit", fitConf, nil, &fit, func() error {
		if err := fitReg(); err != nil {
			return err
		}
		fit.RegressorAccuracy = regAcc
		fit.TrainAccuracy = train.Accuracy(victim.Local, r.clean, r.norm, 256)
		fit.TestAccuracy = train.Accuracy(victim.Local, r.test, r.norm, 256)
		return nil
	}); err != nil {
		return err
	}
	r.log.Printf("dataset inference (%s-box): regressor accuracy %.3f; the victim's accuracy %.2f%% on the owner's training images, %.2f%% on the test set",
		mode, fit.RegressorAccuracy, 100*fit.TrainAccuracy, 100*fit.TestAccuracy)
	res.Setup = map[string]any{"mode": mode, "fit": fit, "fit_images": fitN, "m": m, "walk": walk, "gd": gd}
	fitHash := hashOf(fitConf)
	innocents := 0
	for _, mr := range r.res.Rows {
		if err := r.ctx.Err(); err != nil {
			return err
		}
		if !mr.Stolen && mr.Attack != "independent" {
			// The walks cost about 2m x 300 queries a suspect: a large innocent suite is
			// sampled, its first innocents (one of each kind) standing for it.
			if innocents++; innocents > diInnocents {
				continue
			}
		}
		if mode == "white" && (mr.Served != "" || mr.Front != "") {
			continue // answers only: no weights to descend
		}
		id, err := r.suspectID(mr)
		if err != nil {
			return err
		}
		row := DefenceRow{Attack: mr.Attack, Label: mr.Label, Stolen: mr.Stolen, Accuracy: mr.Accuracy, Agreement: mr.Agreement}
		conf := map[string]any{"fit": fitHash, "suspect": id}
		if err := r.stage("di-"+mode+"-"+mr.Attack, conf, nil, &row, func() error {
			if err := fitReg(); err != nil {
				return err
			}
			s, stop, err := r.suspectModel(mr)
			if err != nil {
				return err
			}
			defer stop()
			f, err := distances(s)
			if err != nil {
				return err
			}
			v, err := reg.Verify(f, privTest, pubTest, h, w, p.Alpha, 0)
			if err != nil {
				return fmt.Errorf("on %s: %w", mr.Attack, err)
			}
			row.P, row.DeltaMu = v.P, v.DeltaMu
			return nil
		}); err != nil {
			return err
		}
		row.Verdict, row.Outcome = r.defenceVerdict(mr.Accuracy, row.P)
		res.Rows = append(res.Rows, row)
		r.log.Printf("dataset inference (%s-box) %s: p %.3g, delta %+.3f", mode, mr.Attack, row.P, row.DeltaMu)
	}
	if r.res.Defences == nil {
		r.res.Defences = map[string]*DefenceResult{}
	}
	r.res.Defences[name] = res
	return nil
}

// defenceVerdict is a baseline's verdict on a suspect of test accuracy acc whose test gave p:
// as MOVE's and BadNets' verdicts, a suspect that classifies the test images no better than
// chance is no evidence either way (inconclusive).
func (r *runner) defenceVerdict(acc, p float64) (bool, string) {
	n := r.test.Len()
	chance := stats.BinomialUpper(int(math.Round(acc*float64(n))), n, 1/float64(max(2, len(r.test.Classes))))
	switch {
	case chance >= r.cfg.Profile.Alpha:
		return false, "inconclusive"
	case p < r.cfg.Profile.Alpha:
		return true, "stolen"
	}
	return false, "not stolen"
}

// suspectID names what a suspect is, for the stages that test it: its model file's SHA-256
// (and the front it is served behind), or the degenerate kind and seed of a served one.
func (r *runner) suspectID(row Row) (string, error) {
	if row.Served != "" {
		return fmt.Sprintf("served %s %s seed %d", row.Served, row.Attack, r.cfg.Seed), nil
	}
	f := r.rowFile(row)
	fh, err := os.Open(f)
	if err != nil {
		return "", err
	}
	defer fh.Close()
	h := sha256.New()
	if _, err := io.Copy(h, fh); err != nil {
		return "", fmt.Errorf("%s: %w", f, err)
	}
	return fmt.Sprintf("%x front %q", h.Sum(nil), row.Front), nil
}

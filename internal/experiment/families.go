package experiment

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"

	"move/internal/buildinfo"
	"move/internal/classifier"
	"move/internal/features"
	"move/internal/meta"
	"move/internal/record"
	"move/internal/stats"
	"move/internal/verify"
	"move/internal/watermark"
)

// White-box feature families (Config.Features): each trains a white-box meta-classifier of its
// own on the same victim, benign models and key, and verifies every suspect with it, m = the
// profile's white-box m, against the same reference, so that the table shows the families side
// by side. "weights" is the paper's (the table's white-box column); the input-gradient
// families need no weight alignment and read a suspect of any architecture.
//
// Two families change what the classifier is trained against rather than its features:
// weights-same-init trains the paper's classifier against benign models that start from the
// victim's initial weights (so that lineage cannot separate the two classes, only the
// external feature can); input-grad-students puts the owner's own students on both sides,
// two of the victim with it and two of benign models with them (distillation on the owner's
// clean training images, the distill attack's recipe, seeds of their own), so that "a
// student" separates nothing and only what a student inherits from the victim does. It
// trains on every training sample of the key (input gradients are cheap), without the
// control-style contrast (with it, the classifier falls to chance on CIFAR-10), and scores
// each key image by the mean over its augmented views (features.View), m images as ever.
// Measured on CIFAR-10 quick it sees every student, and it accuses a model trained on the
// owner's own clean images: it recognises what the owner's data teaches, not the external
// feature, so it is reported beside the verdict, never the verdict (README).
//
// input-grad-sim trains nothing: each key image's score is the cosine between the suspect's
// input gradient and the victim's (verify.Similar), against the same reference.
var familyLayouts = func() map[string]string {
	m := map[string]string{SameInitFamily: features.Compressed, "input-grad-students": features.InputGrad, GainStudentsFamily: features.GainTop, GainGatedFamily: features.GainTop}
	for f, l := range features.Families {
		m[f] = l
	}
	return m
}()

// WhiteFamilies are the families the table's white-box verdict can come from
// (Config.WhiteFamily), and DefaultWhiteFamily the one it does unless told: style-gain-top,
// the ranked style-gain test on the victim's top m key images, each gain the mean over the
// five augmentations. Measured (README, "What each mode detects"): on CIFAR-10 quick it flags
// six of the seven thefts at m = 10 (copy, fine-tuning, the adaptive attack, distillation and
// both query students; zero-shot 0.045), where the paper's classifier trained against benign
// models from the victim's initial weights (weights-same-init, the default until stop 34)
// flags three and the paper's one; on the Fashion-MNIST demo with 30 innocents it flags copy,
// fine-tuning, the adaptive attack and zero-shot and accuses none of 28 innocents (the victim's
// initial weights trained clean among them, p = 1) nor the false claimants' target. It trains
// no classifier and needs no extra models.
var WhiteFamilies = []string{features.GainTop, SameInitFamily, "weights"}

// SameInitFamily is the paper's classifier trained against benign models from the victim's
// initial weights; DefaultWhiteFamily is the table's white-box family unless
// Config.WhiteFamily says otherwise.
const (
	SameInitFamily     = "weights-same-init"
	DefaultWhiteFamily = features.GainTop
)

// GainStudentsFamily is style-gain-top ranked by the mean gain of the victim and the owner's
// two students of it (distilled on the owner's clean images, as input-grad-students' positives)
// beyond the benign models' (move meta --features style-gain-top --positive S1 --positive S2):
// the top images are those where what the victim learned of the style survives distillation.
// A student ranks only if it passes the gate (verify.PositiveGateM): it gains where the
// victim gains. Measured (README): on CIFAR-10 quick both pass and it sees more students than
// style-gain-top; on the Fashion-MNIST demo, whose students inherit nothing, neither passes
// (before the gate it ranked noise: the copy 0.13). A column, not the verdict: on CIFAR-10 it
// accuses an innocent student, the independent control distilled by the distill attack's
// recipe (Config.InnocentStudents; p 0.0063, style-gain-top 0.21), because students of any
// teacher gain on the images where the owner's students gain.
const GainStudentsFamily = "style-gain-students"

// GainGatedFamily is style-gain-students with the two benign models from the victim's initial
// weights (weights-same-init's) among the benign models that rank: an image ranks high only
// if the victim and its students that pass the gate gain there beyond models that share the
// victim's data, recipe and initial weights but not its style, so that what ranks is the
// style, not the victim's lineage. A column, not the verdict: measured on CIFAR-10 quick
// (stop 37, the 360-iteration zero-shot attack) it flags ten of eleven thefts at m = 10
// (label-query then fine-tuning 0.012 missed) but accuses two innocent students
// (Config.InnocentStudents: zero-shot 0.0049, distilled 0.0081) and brings the independent
// control to 0.030 (README).
const GainGatedFamily = "style-gain-gated"

// Families are the white-box feature families, in the order tables print them.
var Families = []string{"weights", "weights-full", "weights-raw", SameInitFamily, "input-grad", "input-sign", "input-grad-students", features.GradSimilarity, features.GainTop, GainStudentsFamily, GainGatedFamily}

// ParseFamilies checks a list of family names; "all" stands for every family.
func ParseFamilies(names []string) ([]string, error) {
	var out []string
	for _, n := range names {
		for _, f := range strings.Split(n, ",") {
			f = strings.TrimSpace(f)
			switch {
			case f == "":
			case f == "all":
				for _, g := range Families {
					if !slices.Contains(out, g) {
						out = append(out, g)
					}
				}
			case familyLayouts[f] == "":
				return nil, fmt.Errorf("unknown white-box feature family %q (known: %s, all)", f, strings.Join(Families, ", "))
			case !slices.Contains(out, f):
				out = append(out, f)
			}
		}
	}
	return out, nil
}

// whiteMeta trains (a stage, file meta-white-NAME.safetensors) or reloads the white-box
// meta-classifier with the given layout.
func (r *runner) whiteMeta(name, layout string, victim classifier.Model, benign []classifier.Model, pairs []watermark.Pair) (*meta.Classifier, error) {
	return r.whiteMetaWith(name, verify.MetaOptions{Layout: layout}, nil, victim, benign, pairs)
}

// whiteMetaWith is whiteMeta with the owner's extra models of o (Positives, Negatives) and
// a record of where they came from (their stages) in the stage's configuration.
func (r *runner) whiteMetaWith(name string, o verify.MetaOptions, extra any, victim classifier.Model, benign []classifier.Model, pairs []watermark.Pair) (*meta.Classifier, error) {
	p := r.cfg.Profile
	layout := o.Layout
	file := r.path("meta-white-" + name + ".safetensors")
	mo := o
	mo.Mode, mo.Seed, mo.Fit = features.White, r.cfg.Seed, meta.Options{}
	if mo.MaxTrain == 0 {
		mo.MaxTrain = p.MetaTrain
	}
	if p.MetaHidden == "logistic" {
		mo.Fit.Hidden = []int{}
	}
	form := features.Form
	if features.IsInput(layout) {
		form = features.InputGradForm
	}
	rec := mo
	rec.Positives, rec.Negatives = nil, nil // models: their stages are in extra
	conf := map[string]any{"opts": rec, "hidden": p.MetaHidden, "upstream": r.base, "controls": r.stageHash("controls"), "features": form}
	if extra != nil {
		conf["extra"] = extra
	}
	info, err := r.metaStage("meta-white-"+name, file, conf, victim, benign, pairs, mo)
	if err != nil {
		return nil, err
	}
	r.res.Meta["white-"+name] = info
	r.log.Printf("white-box meta-classifier (%s): held-out accuracy %.3f", name, info.HeldOutAcc)
	return meta.Load(file)
}

// metaStage trains the meta-classifier of options mo as stage name (its artefact file) or
// reuses it, and returns its record.
func (r *runner) metaStage(name, file string, conf map[string]any, victim classifier.Model, benign []classifier.Model, pairs []watermark.Pair, mo verify.MetaOptions) (meta.Info, error) {
	var info meta.Info
	err := r.stage(name, conf, []string{file}, &info, func() error {
		c, err := verify.TrainMeta(victim, benign, pairs, mo)
		if err != nil {
			return err
		}
		c.Info.Version, c.Info.Command = buildinfo.Version, r.cfg.Command
		info = c.Info
		return c.Save(file, true)
	})
	return info, err
}

// verifyWhite verifies suspect s of row with white-box meta-classifier c against ref; nil
// when the suspect cannot be read that way (served, or weights that do not line up). With
// draws (the table's verdict), it repeats the test on Config.Draws draws of the images.
func (r *runner) verifyWhite(c *meta.Classifier, row Row, s, ref classifier.Model, pairs []watermark.Pair, draws bool) (*Verdict, error) {
	p := r.cfg.Profile
	o := r.cfg.testOptions(p.MWhite)
	res, err := tableTest{c: c, mode: features.White, o: o}.run(s, ref, pairs, 0)
	if err != nil {
		return nil, fmt.Errorf("verifying %s (white-box, %s): %w", row.Attack, c.Info.Layout, err)
	}
	if res == nil {
		return nil, nil // served (no weights), or weights that do not line up with c
	}
	v := verdictOf(res)
	if r.cfg.Draws > 1 && draws {
		// The same test on Draws draws of the images, the first of them the verdict's (the
		// same seed draws the same images first).
		o.Resamples = r.cfg.Draws
		all, err := verify.Run(c, s, ref, pairs, o)
		if err != nil {
			return nil, fmt.Errorf("verifying %s (white-box, %s, %d draws): %w", row.Attack, c.Info.Layout, r.cfg.Draws, err)
		}
		if len(all.PValues) != r.cfg.Draws || all.PValues[0] != res.P {
			return nil, fmt.Errorf("verifying %s over %d draws: %d p-values, the first %g where the verdict's draw gave %g", row.Attack, r.cfg.Draws, len(all.PValues), all.PValues[0], res.P)
		}
		v.Draws, v.DrawsMedianP = len(all.PValues), all.PMedian
		for _, q := range all.PValues {
			if q < p.Alpha {
				v.DrawsFlagged++
			}
		}
	}
	return v, nil
}

// families verifies every suspect with each white-box family of Config.Features
// (Row.Families); the family of Config.WhiteFamily is the table's white-box column itself.
func (r *runner) families() error {
	if len(r.cfg.Features) == 0 {
		return nil
	}
	victim, benign, ref, pairs, err := r.references()
	if err != nil {
		return err
	}
	for _, name := range r.cfg.Features {
		var c *meta.Classifier
		switch {
		case name == features.GradSimilarity:
			if err := r.similarity(victim, ref, pairs); err != nil {
				return err
			}
			continue
		case name == r.cfg.WhiteFamily: // the table's white-box column
		case name == features.GainTop || name == GainStudentsFamily || name == GainGatedFamily:
			var pos, same []classifier.Model
			var hashes, sameHashes []string
			if name != features.GainTop {
				if pos, _, hashes, err = r.ownerStudents(victim, benign); err != nil {
					return err
				}
				hashes = hashes[:len(pos)] // the victim's students come first
			}
			if name == GainGatedFamily {
				if same, sameHashes, err = r.sameInitBenign(); err != nil {
					return err
				}
			}
			c, err := r.gainTopRanking(name, victim, pos, hashes, benign, same, sameHashes, pairs)
			if err != nil {
				return err
			}
			if len(pos) > 0 {
				r.log.Printf("%s: %d of %d owner students rank (the gate's p-values %.3g; a student ranks when it gains where the victim gains, p < %g)", name, len(c.Info.PositivesKept), len(pos), c.Info.PositiveP, verify.PositiveGateAlpha)
			}
			if err := r.verifyRows(name, false, func(row Row, s classifier.Model) (*Verdict, error) {
				return r.gainTopVerdict(c, row.Attack, s, ref, pairs)
			}); err != nil {
				return err
			}
			continue
		case name == SameInitFamily:
			same, hashes, err := r.sameInitBenign()
			if err != nil {
				return err
			}
			if c, err = r.whiteMetaWith(name, verify.MetaOptions{Layout: familyLayouts[name]}, hashes, victim, same, pairs); err != nil {
				return err
			}
		case name == "input-grad-students":
			pos, neg, hashes, err := r.ownerStudents(victim, benign)
			if err != nil {
				return err
			}
			// Input gradients are cheap: every training sample of the key, and each key
			// image's score averaged over its augmented views.
			o := verify.MetaOptions{Layout: familyLayouts[name], Positives: pos, Negatives: neg, MaxTrain: len(pairs), Views: features.MaxViews, NoControls: true}
			if c, err = r.whiteMetaWith(name, o, hashes, victim, benign, pairs); err != nil {
				return err
			}
		default:
			if c, err = r.whiteMeta(name, familyLayouts[name], victim, benign, pairs); err != nil {
				return err
			}
		}
		if err := r.verifyRows(name, c == nil, func(row Row, s classifier.Model) (*Verdict, error) {
			return r.verifyWhite(c, row, s, ref, pairs, false)
		}); err != nil {
			return err
		}
	}
	return nil
}

// writeFamilies prints each suspect's white-box p-value under every family run.
func writeFamilies(w io.Writer, res *Results) {
	fams := res.Config.Features
	if len(fams) == 0 {
		return
	}
	fmt.Fprintf(w, "\nwhite-box feature families (p-values at m = %d against the same reference; * a verdict of stolen,\n", res.Config.Profile.MWhite)
	fmt.Fprintln(w, "i inconclusive, - not readable: served, or weights that do not line up; held-out accuracy of each classifier):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "suspect\tstolen\t")
	for _, f := range fams {
		fmt.Fprintf(tw, "%s\t", f)
	}
	fmt.Fprint(tw, "\n(held-out accuracy)\t\t")
	for _, f := range fams {
		key := "white-" + f
		if f == res.Config.WhiteFamily || res.Config.WhiteFamily == "" && f == "weights" { // "": before the choice was recorded
			key = features.White
		}
		if info, ok := res.Meta[key]; ok {
			fmt.Fprintf(tw, "%.3f\t", info.HeldOutAcc)
		} else {
			fmt.Fprint(tw, "-\t")
		}
	}
	fmt.Fprintln(tw)
	for _, row := range res.Rows {
		fmt.Fprintf(tw, "%s\t%v\t", row.Label, row.Stolen)
		for _, f := range fams {
			fmt.Fprintf(tw, "%s\t", familyCell(row.Families[f]))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

// writePower prints, for every theft, each test's standardized effect per key image and how
// many key images a test of that effect needs before a sample that shows it exactly gets
// p < alpha (stats.SamplesToReject): the black-box style-gain test and each white-box family.
func writePower(w io.Writer, res *Results) {
	fams := res.Config.Features
	if len(fams) == 0 {
		return
	}
	alpha := res.Config.Profile.Alpha
	fmt.Fprintf(w, "\nper-image effect of each test on the thefts (statistic / sqrt(n), beyond the margin) and the key\n")
	fmt.Fprintf(w, "images a test of that effect needs for p < %g (- none: no effect, or more than 10,000):\n", alpha)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "suspect\tblack gain (n)\tneeds\t")
	for _, f := range fams {
		fmt.Fprintf(tw, "%s\tneeds\t", f)
	}
	fmt.Fprintln(tw)
	cell := func(v *Verdict, withN bool) string {
		if v == nil || v.N == 0 {
			return "-\t-"
		}
		need := "-"
		if n := stats.SamplesToReject(v.Effect, alpha, 10000); n > 0 {
			need = fmt.Sprint(n)
		}
		e := fmt.Sprintf("%+.2f", v.Effect)
		if math.Abs(v.Effect) >= 100 { // scores that barely vary: a huge statistic
			e = fmt.Sprintf("%+.0e", v.Effect)
		}
		if withN {
			return fmt.Sprintf("%s (%d)\t%s", e, v.N, need)
		}
		return fmt.Sprintf("%s\t%s", e, need)
	}
	for _, row := range res.Rows {
		if !row.Stolen {
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t", row.Label, cell(row.Black, true))
		for _, f := range fams {
			fmt.Fprintf(tw, "%s\t", cell(row.Families[f], false))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

// familyCell is a verdict's p-value, marked when it is stolen or inconclusive.
func familyCell(v *Verdict) string {
	switch {
	case v == nil:
		return "-"
	case v.Stolen:
		return fmt.Sprintf("%.3g*", v.P)
	case v.Verdict == verify.Inconclusive:
		return fmt.Sprintf("%.3g i", v.P)
	}
	return fmt.Sprintf("%.3g", v.P)
}

// similarity verifies every local suspect with the input-gradient similarity test
// (verify.Similar): agreement with the victim's input gradients, against the table's benign
// reference, with the white-box m and margin, on every key sample (the family's meta file).
func (r *runner) similarity(victim, ref classifier.Model, pairs []watermark.Pair) error {
	p := r.cfg.Profile
	// The family's meta file, as move meta --features input-grad-sim writes it, so that
	// move verify --meta FILE --victim victim.safetensors --seed SEED+7 draws the same images.
	file := r.path("meta-white-" + features.GradSimilarity + ".safetensors")
	var info meta.Info
	// The key's hash depends on its control styles, which the controls stage adds to it.
	conf := map[string]any{"upstream": r.base, "controls": r.stageHash("controls")}
	err := r.stage("meta-white-"+features.GradSimilarity, conf, []string{file}, &info, func() error {
		c, err := verify.SimilarityRecord(victim, pairs)
		if err != nil {
			return err
		}
		c.Info.Seed, c.Info.Version, c.Info.Command = r.cfg.Seed, buildinfo.Version, r.cfg.Command
		var err2 error
		if c.Info.VictimHash, err2 = hashPath(r.path("victim.safetensors")); err2 != nil {
			return err2
		}
		if c.Info.KeyHash, err2 = hashPath(r.path("marked", "key.json")); err2 != nil {
			return err2
		}
		info = c.Info
		return c.Save(file, true)
	})
	if err != nil {
		return err
	}
	test, err := verify.NewSimilarityTest(victim, ref, pairs, info.HeldOutIdx, r.cfg.testOptions(p.MWhite))
	if err != nil {
		return fmt.Errorf("the %s test: %w", features.GradSimilarity, err)
	}
	return r.verifyRows(features.GradSimilarity, false, func(row Row, s classifier.Model) (*Verdict, error) {
		if s.Local == nil {
			return nil, nil
		}
		res, err := test.Run(s)
		if err != nil {
			return nil, fmt.Errorf("verifying %s (white-box, %s): %w", row.Attack, features.GradSimilarity, err)
		}
		return verdictOf(res), nil
	})
}

// gainTopRanking ranks the key images by the victim's style gain (with positives: the mean of
// the victim's and theirs; posHashes their stages) beyond the benign models' and the owner's
// further benign models' (more; moreHashes their stages) (stage meta-white-NAME, the family's
// meta file, as move meta --features style-gain-top writes it).
func (r *runner) gainTopRanking(name string, victim classifier.Model, pos []classifier.Model, posHashes []string, benign, more []classifier.Model, moreHashes []string, pairs []watermark.Pair) (*meta.Classifier, error) {
	file := r.path("meta-white-" + name + ".safetensors")
	var benignHashes []string
	for i := range benign {
		benignHashes = append(benignHashes, r.stageHash(fmt.Sprintf("train-benign%d", i+1)))
	}
	conf := map[string]any{"upstream": r.base, "controls": r.stageHash("controls"), "benign": append(benignHashes, moreHashes...), "augs": verify.GainTopAugs}
	if len(pos) > 0 {
		conf["positives"], conf["gate"] = posHashes, verify.PositiveGateM // positives rank only if they pass the gate
	}
	var info meta.Info
	err := r.stage("meta-white-"+name, conf, []string{file}, &info, func() error {
		rk := verify.GainTopRankers{Victim: victim, Positives: pos, Benign: append(slices.Clip(benign), more...), Shortfall: r.cfg.Profile.RefShortfall}
		c, err := verify.GainTopRecord(rk, pairs, verify.GainTopAugs)
		if err != nil {
			return err
		}
		c.Info.Seed, c.Info.Version, c.Info.Command = r.cfg.Seed, buildinfo.Version, r.cfg.Command
		if c.Info.VictimHash, err = hashPath(r.path("victim.safetensors")); err != nil {
			return err
		}
		if c.Info.KeyHash, err = hashPath(r.path("marked", "key.json")); err != nil {
			return err
		}
		info = c.Info
		return c.Save(file, true)
	})
	if err != nil {
		return nil, err
	}
	return meta.Load(file)
}

// gainTopVerdict tests a suspect's style gains on the first m images of ranking c against the
// reference's: a verdict of the style-gain-top family.
func (r *runner) gainTopVerdict(c *meta.Classifier, name string, s, ref classifier.Model, pairs []watermark.Pair) (*Verdict, error) {
	res, err := verify.GainTop(c, s, ref, pairs, gainTopOptions(r.cfg.Profile))
	if err != nil {
		return nil, fmt.Errorf("verifying %s (%s): %w", name, features.GainTop, err)
	}
	return verdictOf(res), nil
}

// testOptions are the options of a meta-classifier's verdict on m images in this run (the
// table's, the sweeps', the claims' and the defences'): the profile's level, margin and
// reference shortfall, and the run's seed, which draws the images.
func (cfg Config) testOptions(m int) verify.Options {
	p := cfg.Profile
	return verify.Options{M: m, Alpha: p.Alpha, MinDelta: p.MinDelta, RefShortfall: p.RefShortfall, Seed: cfg.Seed + 7}
}

// mOf is the profile's number of verification images in mode (white or black).
func (p Profile) mOf(mode string) int {
	if mode == features.Black {
		return p.MBlack
	}
	return p.MWhite
}

// gainTopOptions are the options of every style-gain-top verdict of profile p (the table's
// and the sweeps'): the top m of the ranking, so no seed, and the family's own margin.
func gainTopOptions(p Profile) verify.Options {
	return verify.Options{M: p.MWhite, Alpha: p.Alpha, RefShortfall: p.RefShortfall}
}

// hashPath is the SHA-256 of a file, in hex.
func hashPath(path string) (string, error) {
	h, err := record.HashFile(path)
	if err != nil {
		return "", err
	}
	return h.SHA256, nil
}

// verifyRows gives every suspect of the table a verdict of family name: the table's white-box
// verdict itself when table is set, else verdict(row, suspect) for each suspect with a model
// file (served ones have no weights to read).
func (r *runner) verifyRows(name string, table bool, verdict func(Row, classifier.Model) (*Verdict, error)) error {
	for i := range r.res.Rows {
		if err := r.ctx.Err(); err != nil {
			return err
		}
		row := &r.res.Rows[i]
		if row.Families == nil {
			row.Families = map[string]*Verdict{}
		}
		if table {
			row.Families[name] = row.White
			continue
		}
		if row.Served != "" || row.Front != "" {
			continue // served: no weights to read, and no server to start
		}
		s, stop, err := r.suspectModel(*row)
		if err != nil {
			return err
		}
		v, err := verdict(*row, s)
		stop()
		if err != nil {
			return err
		}
		row.Families[name] = v
	}
	return nil
}

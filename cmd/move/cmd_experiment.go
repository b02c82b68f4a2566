package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"move/internal/atomicfile"
	"move/internal/experiment"
	"move/internal/modelfile"
	"move/internal/train"
)

func init() {
	commands["experiment"] = &command{
		summary: "run MOVE end to end and reproduce the paper's tables (the main job)",
		usage:   "--data DIR --style IMAGE --out DIR [--profile quick|standard|paper|demo|FILE.json] [--sweep rate=...|m=...|adaptive=...|style=...]",
		help: `Runs the whole pipeline: writes the profile's slice of DATA, embeds the external features
(--style, rate gamma), trains the victim on the watermarked set and benign models on the clean
one, steals the victim with every attack of move steal plus the independent control, trains
the white- and black-box meta-classifiers and verifies every suspect in both modes. Writes:

  OUT/results.json   every figure, the seeds, versions and the exact configuration
  OUT/report.html    the table, style and sample images, plots (self-contained, offline)
  OUT/...            every artefact: data/, marked/ (with key.json), models, suspects/, metas

and prints the table. Re-running the same command resumes: each stage's artefact is reused
when present and made by the same configuration (OUT/stages/*.json record which).

The meta-classifiers are trained against all benign models but one; that one, which they
never saw, is the reference of every test, so an innocent model is compared with a model
that is innocent in exactly the same way.

Profiles:
  quick  2,000 training images per class for the owner (gamma 0.2), the other 3,000 for the
         thief, resnet20, 10 epochs; attacks scaled down; about an hour and a half on 2
         CPU cores on CIFAR-10 (the run prints its own estimate first)
  standard  the whole training set for the owner (gamma 0.1), half the test split for the
         thief, resnet20, 30 epochs, attacks scaled in proportion; one night (at most 8
         hours) on 2 CPU cores on CIFAR-10, resumable
  paper  the paper's settings (whole set, wrn16-1, 200 epochs, attacks as published)
  demo   300 images per class, the style four times stronger (--strength 8), a few minutes
         (what move demo runs)
  FILE.json  a profile as results.json records it (config.profile): the fields it gives
         override the built-in profile its "name" names (quick for any other name), so a
         run's profile can be copied, edited and run again; unknown fields and unusable
         values are errors (examples/profiles/ has the ones the README measures)

Every run first measures this machine (training, inference and styling speed at the
profile's architecture and image size, about ten seconds) and prints the experiment's
estimated time; it is in results.json.

Innocents. Besides the independent control, every run checks the profile's everyday
innocents: a model trained on all the clean data (the owner's and the thief's images) with
the victim's recipe, better than the victim, and a served model (real HTTP on loopback) that
answers a constant. --innocents N makes the innocent suite N models: other seeds of the
victim's recipe on the thief's data, other architectures (wrn16-1, vgg11-bn, resnet32),
models trained on the owner's own clean images, models carrying someone else's MOVE
watermark (another style), models fine-tuned from an unrelated model on the owner's clean
images, a served model answering at random and an untrained network (12 or more hold every
kind). --innocent-onnx adds models trained elsewhere (PyTorch exports). --innocent-students
adds a student of the independent control by each theft that trains a student (distillation,
zero-shot, label-query, logit-query; the theft's recipe and data, that model as the teacher):
a test that flags them sees a theft's recipe, not the victim. The table ends with
the false accusations among them at alpha 0.01 and 0.05, the exact Clopper-Pearson 95% upper
bound on the false-accusation rate, and the Kolmogorov-Smirnov comparison of their p-values
with the uniform distribution; the report plots them (QQ plot). Each innocent is a stage:
a larger suite resumes a smaller one.

Defences (--defence badnets): a baseline watermark is embedded in a victim of its own (same
architecture, recipe and seed), stolen by the same attacks, and its test run on every suspect
against the same reference; the table then compares its p-values and its harmlessness with
MOVE's. badnets: a patch trigger on the same share of training images, relabelled to class 0.
dataset-inference (Maini et al. 2021): no watermark; a confidence regressor learns on MOVE's
victim to tell the owner's training images from public ones by their distances to the
decision boundary, and each suspect is tested on others (it protects the data: a model
trained on the owner's own data is flagged by design), in both settings: black-box (blind
walks, m = the black-box m) and white-box (column dataset-inference-white: MinGD, the
smallest L2 and Linf gradient-descent perturbations to each other class, m = the white-box
m). It tests the thefts, the independent model and the first 19 innocents (one of each
kind); each suspect's test is a stage. It reads the gap between the victim's accuracy on
its training images and on unseen ones, which the run prints.
ewe (entangled watermarks, Jia et al. 2021): the same trigger on 10% (the rate) of the training
set's size in extra images of class 1, labelled class 0, and the victim's loss adds the soft
nearest-neighbour loss between those and class 0's clean images (weight 0.5, on the pooled
features), maximised, so that a student learning class 0 learns the watermark with it; the
trigger test on stamped class-1 test images.
move-patch: MOVE's patch-based variant (the paper's Table 9): the same images the key styles
carry BadNets' white square instead of the style, labels unchanged; MOVE's benign models,
meta-classifier recipe and test, in both modes (columns move-patch-white and -black).
conferrable (conferrable adversarial examples, Lukas et al. 2021): no watermark; the
fingerprint built to recognise students. The black-box m of the owner's clean training
images, each perturbed within 8/255 towards the victim's second class so that the victim and
the owner's two students of it answer it and the benign models and the owner's students of
them do not (the input-grad-students family's models, trained once for both); each suspect's
probability of the targets against the reference's, paired, with the margin. It reads
answers only, so it tests served suspects too.

White-box feature families (--features all, or names): every suspect is verified in
white-box mode again with a meta-classifier of each family, trained on the same victim,
benign models and key and tested against the same reference with the same m: weights (the
paper's signs of the loss gradient with respect to every weight, compressed per kernel),
weights-full (every sign), weights-raw (the gradients, not their signs), input-grad and
input-sign (the gradient with respect to each transformed image, its direction or its signs,
pooled: they need no weight alignment, so a student trained from its own initialisation, or
a suspect of another architecture, is readable), weights-same-init (the paper's classifier
trained against two benign models that start from the victim's initial weights, so that
lineage cannot separate the classes) and input-grad-students (input-grad with the owner's own students on both sides:
two distilled from the victim with it, two distilled from benign models with them; trained
on every key sample without the control contrast, each key image scored by the mean over 8
augmented views of it; on CIFAR-10 it flags students and also a model trained on the owner's
own clean images, so it is reported, not a verdict), and input-grad-sim (no classifier: the
cosine between the suspect's full-resolution input gradient and the victim's at each key
image, averaged over 8 augmented views, paired against the reference's), and style-gain-top
(no classifier: the style-gain test, suspect against reference, on the m key images where the
victim's gain from the owner's style is most its own, ranked by the victim and the benign
models; each gain the mean over the five augmentations), and style-gain-students (the same
test, ranked by the mean gain of the victim and the owner's two students of it: the images
where what the victim learned of the style survives distillation), and style-gain-gated (the
same, with weights-same-init's two benign models from the victim's initial weights among the
models that rank, so that lineage does not rank). The table's white-box column is
--white-family's: style-gain-top unless told (measured: it sees students, clears the innocent
suites and the false claimants' target), weights-same-init or weights. weights-same-init,
input-grad-students and the style-gain-students families train their extra models first (in OUT/owner). The table and the
report show the families side by side. --student-arch ARCH adds a label-query student of
another architecture than the victim's as a suspect: the weight families cannot read it, the
input-gradient ones can.

Ablations (--ablations): every suspect is verified again with a white-box meta-classifier on
the gradients themselves instead of their signs, and with no meta-classifier at all (the
suspect's true-class probability on owner-styled images against the reference's).

Detection (--detect): the thief looks for the owner's mark in the victim: STRIP (are inputs
that carry the mark — MOVE's styled images, BadNets' triggered ones — answered with low
entropy when other images are superimposed?) and Neural Cleanse (is some class reachable by
an outlying small patch?), on MOVE's victim and on each baseline's.

Washing (--washing): the thief who has read the paper washes the stolen model before serving
it; these attacks of the registry (move help steal) become suspects after the multi-stage
thefts, each with the thief's accuracy next to its verdicts (the price of washing). A model
the thief serves behind a front (JPEG, blur, augmentation-averaging) is verified through that
front over HTTP, black-box only.

False claims (--false-claims): a dishonest claimant accuses the well-trained innocent (a
public model better than the victim) three ways: (a) public-finetune: they fine-tune the
public model on their own styled data, call it their victim and accuse the original; (b)
style-shopping: their own model never learned any style, and they build a key after the fact
with each of 20 style images, keeping the one whose test flags the target (the smallest
p-value and its Bonferroni correction are reported); (c) weak-benign: the owner's real victim
and key, but the meta-classifier trained against, and the test run with, one-epoch benign
models. The table says whether move convicted the innocent.

Control styles (--control-style, or the profile's procedural ones) are styled onto part of the
key after the attacks; the meta-classifiers contrast them (see move help verify).

--sweep rate=0.05,0.1,0.2 re-runs the pipeline per rate (in OUT/sweep-rate-V);
--sweep m=5,10,20,50 re-verifies white-box, with m key images, every suspect whose weights the
run holds, and counts per m the thefts flagged and the innocents accused; black-box it
follows the copy and the independent model (the black-box verdict's style-gain test reads
every held-out key sample, so m moves only its meta-classifier's test).
--sweep adaptive=0,0.05,0.1,0.15,0.2 washes each student (distill, zeroshot, labelquery,
logitquery) by fine-tuning it on that share of the owner's clean training data (the adaptive
attack's recipe; the paper's Figure 6) and verifies it: p-value, delta-mu and accuracy per share.
--sweep style=a.jpg,b.jpg,c.jpg runs the pipeline once per style image (in OUT/sweep-style-NAME;
the paper's Table 8) and puts every theft's p-values side by side.

EXIT STATUS
  0 when every verdict is right, 1 when one is wrong (a missed theft or a false
  accusation), 2 on error, 3 on an internal error (a bug).`,
		run: func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			fs := newFlags("experiment", stderr)
			dataSrc := fs.String("data", "", "data set: image folder root, CIFAR-10 binary or IDX dir, synthetic[:N]")
			stylePath := fs.String("style", "", "style image (default: a built-in copy of Van Gogh's The Starry Night)")
			out := fs.String("out", "", "output folder")
			profile := fs.String("profile", "quick", "quick, standard, paper, demo, or a JSON file of a profile (see above)")
			seed := fs.Uint64("seed", 0, "random seed")
			var sweeps listFlag
			fs.Var(&sweeps, "sweep", "rate=V1,V2,..., m=V1,V2,..., adaptive=V1,V2,... or style=IMAGE,IMAGE,... (repeatable)")
			jsonOut := fs.Bool("json", false, "print results.json on stdout instead of the table")
			var innocents int
			intIn(fs, &innocents, "innocents", 0, 0, 10000, "size of the innocent suite (at least the profile's everyday innocents; see below)")
			var controls, external listFlag
			fs.Var(&controls, "control-style", "control style image (repeatable; default: the profile's procedural control styles)")
			fs.Var(&external, "innocent-onnx", "an innocent model trained elsewhere (ONNX), verified as a suspect (repeatable; --onnx-* describe it)")
			claims := fs.Bool("false-claims", false, "simulate three false claims against the well-trained innocent (see below)")
			innocentStudents := fs.Bool("innocent-students", false, "add students of the independent control, one by each student theft, as innocents (see below)")
			defences := defenceFlag(fs)
			ablations := fs.Bool("ablations", false, "verify every suspect with MOVE's ablations too (raw gradients, no meta-classifier)")
			var draws int
			intIn(fs, &draws, "draws", 0, 0, 10000, "repeat the white-box verdict's test on this many draws of m key images: each suspect's share of draws flagged, and the innocents' (0: the verdict's draw only)")
			families := familiesFlag(fs)
			whiteFamily := fs.String("white-family", experiment.DefaultWhiteFamily, "the white-box family of the table's verdict: "+strings.Join(experiment.WhiteFamilies, ", ")+" (weights: the paper's classifier)")
			detectFlag := fs.Bool("detect", false, "run the thief's detection studies (STRIP, Neural Cleanse) on MOVE's victim and the baselines'")
			styleOpts := styleFlags(fs)
			washing := fs.Bool("washing", false, "add the washing attacks (pruning, fine-pruning, int8, strong-augmentation distillation, served fronts; see move help steal)")
			studentArch := fs.String("student-arch", "", "add a label-query student of this architecture (another than the victim's) as a suspect")
			onnxOpts := onnxFlags(fs)
			if err := parse(fs, args); err != nil {
				return err
			}
			od, err := onnxOpts()
			if err != nil {
				return err
			}
			if err := need(fs, "data", "out"); err != nil {
				return err
			}
			p, err := profileNamed(*profile)
			if err != nil {
				return err
			}
			styleOpts(&p)
			return runExperiment(ctx, experimentOptions{Data: *dataSrc, Style: *stylePath, Out: *out, Profile: p, Seed: *seed,
				Sweeps: sweeps, JSON: *jsonOut, Innocents: innocents, ControlStyles: controls, InnocentONNX: external, InnocentStudents: *innocentStudents, ONNX: od, FalseClaims: *claims, Washing: *washing, StudentArch: *studentArch, Defences: *defences, Detect: *detectFlag, Ablations: *ablations, Features: *families, WhiteFamily: *whiteFamily, Draws: draws,
				Command: strings.Join(append([]string{"move", "experiment"}, args...), " ")}, stdout, stderr)
		},
	}
}

// profileNamed is --profile's profile: a built-in one, or one read from a JSON file (a name
// ending in .json).
func profileNamed(name string) (experiment.Profile, error) {
	if strings.HasSuffix(name, ".json") {
		return experiment.LoadProfile(name)
	}
	return experiment.ProfileByName(name)
}

// styleFlags are --transfer and --strength of move experiment and move demo; the function
// they return sets them on a profile.
func styleFlags(fs *flag.FlagSet) func(p *experiment.Profile) {
	var t string
	enumIn(fs, &t, "transfer", "optimise", []string{"optimise", "feedforward"}, "how the owner's and the control styles are applied: optimise each image, or feedforward (a stylizer trained once per style; see move help embed)")
	var strength float64
	floatIn(fs, &strength, "strength", 0, closed(0, 1e6), "style weight relative to content weight, for the owner's and the control styles (0: the profile's: 8 for the demo, 2 for the others; see move help embed)")
	keep := fs.Bool("keep-colors", false, "keep the hue and saturation of the originals in the owner's and the control styles (default: the profile's, false for every built-in one; on the grey demo it lets students inherit more and makes the mark unspecific: README; see move help embed)")
	return func(p *experiment.Profile) {
		p.FeedForward = t == "feedforward"
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "keep-colors" {
				p.Style.KeepColors = *keep
			}
		})
		if strength > 0 {
			p.Style.Strength = strength
		}
	}
}

// experimentOptions are the options of move experiment and move demo.
type experimentOptions struct {
	Data, Style, Out string
	Profile          experiment.Profile
	Seed             uint64
	Sweeps           []string
	JSON             bool
	Innocents        int
	ControlStyles    []string
	InnocentONNX     []string
	InnocentStudents bool
	ONNX             modelfile.ONNXDefaults
	FalseClaims      bool
	Washing          bool
	StudentArch      string
	Defences         []string
	Detect           bool
	Ablations        bool
	Draws            int
	Features         []string
	WhiteFamily      string
	Command          string
}

func runExperiment(ctx context.Context, o experimentOptions, stdout, stderr io.Writer) error {
	src, stylePath, out, seed, jsonOut := o.Data, o.Style, o.Out, o.Seed, o.JSON
	var sws []experiment.Sweep
	for _, s := range o.Sweeps {
		sw, err := experiment.ParseSweep(s)
		if err != nil {
			return err
		}
		sws = append(sws, sw)
	}
	if err := (experiment.Config{Profile: o.Profile, Defences: o.Defences, WhiteFamily: o.WhiteFamily, Draws: o.Draws}).Validate(); err != nil {
		return err
	}
	if stylePath != "" {
		if _, err := os.Stat(stylePath); err != nil {
			return fmt.Errorf("style image: %w", err)
		}
	}
	for _, f := range o.ControlStyles {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("control style image: %w", err)
		}
	}
	for _, f := range o.InnocentONNX { // read after the thefts: a missing one would fail hours in
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("--innocent-onnx: %w", err)
		}
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	if stylePath == "" {
		stylePath = filepath.Join(out, "style.png")
		if _, err := os.Stat(stylePath); err != nil {
			if err := atomicfile.WriteBytes(stylePath, false, experiment.DefaultStyle); err != nil {
				return err
			}
		}
	}
	abs, err := filepath.Abs(stylePath)
	if err != nil {
		return err
	}
	pr := newProgress(stderr)
	start := time.Now()
	log := experiment.Logger{
		Printf: func(format string, a ...any) {
			pr.printf(true, "%s  %s", fmtDuration(time.Since(start).Round(time.Second)), fmt.Sprintf(format, a...))
		},
		Progress: func(stage string, s train.Status) {
			switch {
			case s.Epochs == 0:
				pr.printf(false, "[%s] %d/%d, %.1f img/s, ETA %s", stage, s.Step, s.Steps, s.ImgPerSec, fmtDuration(s.ETA))
			case s.Steps == 0 || s.EpochDone:
				pr.printf(s.EpochDone, "[%s] %d/%d loss %.4f %.0f img/s ETA %s", stage, s.Epoch, s.Epochs, s.Loss, s.ImgPerSec, fmtDuration(s.ETA))
			default:
				pr.printf(false, "[%s] epoch %d/%d step %d/%d loss %.4f %.0f img/s ETA %s", stage, s.Epoch, s.Epochs, s.Step, s.Steps, s.Loss, s.ImgPerSec, fmtDuration(s.ETA))
			}
		},
	}
	cfg := experiment.Config{Data: src, Style: abs, Out: out, Seed: seed, Profile: o.Profile, Command: o.Command,
		ControlStyles: o.ControlStyles, Innocents: o.Innocents, InnocentONNX: o.InnocentONNX, InnocentStudents: o.InnocentStudents, FalseClaims: o.FalseClaims, Washing: o.Washing, StudentArch: o.StudentArch, Defences: o.Defences, Detect: o.Detect, Ablations: o.Ablations, Draws: o.Draws, Features: o.Features, WhiteFamily: o.WhiteFamily}
	if o.ONNX.Norm != nil || o.ONNX.InputSize > 0 || o.ONNX.Classes != nil {
		cfg.ONNX = &o.ONNX
	}
	for _, sw := range sws {
		if sw.Name == "adaptive" {
			cfg.Adaptive = sw.Values // washes the students within the main run, after its verification
		}
	}
	res, err := experiment.Run(ctx, cfg, log)
	if err != nil {
		return err
	}
	for _, sw := range sws {
		if sw.Name == "adaptive" {
			continue
		}
		if err := experiment.RunSweep(ctx, cfg, res, sw, log); err != nil {
			return err
		}
	}
	res.WallSeconds = time.Since(start).Seconds()
	b, _ := json.MarshalIndent(res, "", "  ")
	if err := atomicfile.WriteBytes(filepath.Join(out, "results.json"), true, append(b, '\n')); err != nil {
		return err
	}
	if err := experiment.WriteReport(res); err != nil {
		return err
	}
	if jsonOut {
		stdout.Write(append(b, '\n'))
	} else {
		experiment.WriteTable(stdout, res)
		fmt.Fprintf(stdout, "wall time %s; results in %s, report in %s\n", fmtDuration(time.Since(start).Round(time.Second)),
			filepath.Join(out, "results.json"), filepath.Join(out, "report.html"))
	}
	if wrong := experiment.Wrong(res); len(wrong) > 0 {
		if !jsonOut {
			fmt.Fprintf(stdout, "wrong verdicts (exit status 1): %s\n", strings.Join(wrong, "; "))
		}
		return negative{"some verdicts are wrong: " + strings.Join(wrong, "; ")}
	}
	return nil
}

// familiesFlag adds --features (white-box feature families; repeatable, comma-separated or
// all; each checked) to fs.
func familiesFlag(fs *flag.FlagSet) *[]string {
	var fams []string
	fs.Func("features", "white-box feature families to verify every suspect with, side by side: "+strings.Join(experiment.Families, ", ")+" or all (repeatable, or comma-separated)", func(v string) error {
		f, err := experiment.ParseFamilies(append(fams, v))
		fams = f
		return err
	})
	return &fams
}

// defenceFlag adds --defence (repeatable, or comma-separated; each checked) to fs.
func defenceFlag(fs *flag.FlagSet) *[]string {
	var defences []string
	fs.Func("defence", "a baseline defence to compare with MOVE on the same attacks: "+strings.Join(experiment.Defences, ", ")+" (repeatable, or comma-separated)", func(v string) error {
		for _, d := range strings.Split(v, ",") {
			if !slices.Contains(experiment.Defences, d) {
				return fmt.Errorf("unknown defence %q (known: %s)", d, strings.Join(experiment.Defences, ", "))
			}
			if !slices.Contains(defences, d) {
				defences = append(defences, d)
			}
		}
		return nil
	})
	return &defences
}

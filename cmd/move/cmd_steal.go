package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"move/internal/atomicfile"
	"move/internal/buildinfo"
	"move/internal/classifier"
	"move/internal/data"
	"move/internal/modelfile"
	"move/internal/models"
	"move/internal/oip"
	"move/internal/steal"
	"move/internal/train"
)

// stealOptions are move steal's flags.
type stealOptions struct {
	attack, victim, endpoint, data, substitute, out, arch string
	fraction, lr, temperature                             float64
	epochs, batch, queries, concurrency                   int
	zeroShot                                              steal.ZeroShot
	seed                                                  uint64
	timeout, deadline                                     time.Duration
	onnx                                                  modelfile.ONNXDefaults
	force, jsonOut                                        bool
	command                                               string
}

// stealReport is move steal's JSON output (also kept in the stolen model's metadata).
type stealReport struct {
	Attack            string              `json:"attack"`
	Arch              string              `json:"arch"`
	ServedBehind      string              `json:"served_behind,omitempty"` // the input transform of a served washing front
	Victim            string              `json:"victim"`
	VictimSHA256      string              `json:"victim_sha256"`
	ThiefData         string              `json:"thief_data"`
	EvaluatedOn       string              `json:"evaluated_on"`
	TestAccuracy      float64             `json:"test_accuracy"`
	Agreement         float64             `json:"agreement"`
	Queries           int                 `json:"queries"`
	EvaluationQueries int                 `json:"evaluation_queries"`
	Images            int                 `json:"images"`
	Seconds           float64             `json:"seconds"`
	Seed              uint64              `json:"seed"`
	Config            steal.Config        `json:"config"`
	History           []train.EpochResult `json:"history"`
	Model             string              `json:"model,omitempty"`
	Version           string              `json:"version,omitempty"`
	Command           string              `json:"command,omitempty"`
}

func init() {
	var lines []string
	for _, a := range steal.Attacks() {
		lines = append(lines, fmt.Sprintf("  %-12s %s", a.Name, a.Summary))
	}
	var defaults []string
	for _, a := range steal.Attacks() {
		if a.Recipe.Epochs > 0 {
			defaults = append(defaults, fmt.Sprintf("%s %d epochs (lr %g, weight decay %g, batch %d)", a.Name, a.Recipe.Epochs, a.Recipe.LR, a.Recipe.WeightDecay, a.Recipe.BatchSize))
		}
	}
	commands["steal"] = &command{
		summary: "simulate a model theft: make a stolen (or independent) suspect model",
		usage:   "--attack NAME --victim V|--victim-endpoint URL --data DIR --out FILE [flags]",
		help: `Produces a suspect model the way a thief would, and reports its test accuracy and its
agreement with the victim (the fraction of test images on which both predict the same class).
The output is an ordinary model file: move eval, meta and verify read it, and it can be the
--victim of another attack (multi-stage stealing, across architectures with --arch).

Attacks:
` + strings.Join(lines, "\n") + `

Data. --data is the owner's data set: its test split judges the stolen model, its train
split is what distill (the owner's training data) and adaptive (a --fraction of it) train on;
give the owner's clean set, not the watermarked one. --substitute is the thief's own labelled
data (finetune, labelquery, logitquery, independent). By default the thief gets a fixed random
half of DATA's test split and the other half judges every attack, so that the owner's training
images and the thief's never overlap; every output says which data was used.

Defaults are the paper's settings: ` + strings.Join(defaults, "; ") + `; distill's temperature 4;
zeroshot 10000 generator steps (200 epochs of 50) with 5 student steps of 256 images each.
--epochs, --lr, --iters scale them.

--victim-endpoint steals from a model served over the Open Inference Protocol (labelquery,
logitquery), spending at most --queries images (the budget is enforced by the client); the
agreement is then measured with further queries, counted separately.

EXIT STATUS
  0 on success, 2 on error, 3 on an internal error (a bug).`,
		run: func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			var o stealOptions
			fs := newFlags("steal", stderr)
			onnxOpts := onnxFlags(fs)
			fs.StringVar(&o.attack, "attack", "", "attack: "+strings.Join(steal.Names(), ", "))
			fs.StringVar(&o.victim, "victim", "", "victim model file")
			fs.StringVar(&o.endpoint, "victim-endpoint", "", "victim served over the Open Inference Protocol (query attacks)")
			fs.StringVar(&o.data, "data", "", "owner's (clean) data set: test split judges, train split feeds distill and adaptive")
			fs.StringVar(&o.substitute, "substitute", "", "thief's labelled data (its train split); default: half of DATA's test split")
			floatIn(fs, &o.fraction, "fraction", 0.1, openClosed(0, 1), "adaptive: fraction of DATA's training images the thief fine-tunes on")
			fs.StringVar(&o.out, "out", "", "stolen model file to write")
			fs.StringVar(&o.arch, "arch", "", "architecture of the stolen model (default: the victim's)")
			intIn(fs, &o.epochs, "epochs", 0, 0, 100000, "training epochs (0: the attack's default)")
			floatIn(fs, &o.lr, "lr", 0, closed(0, 10), "learning rate (0: the attack's default)")
			intIn(fs, &o.batch, "batch", 0, 0, 65536, "batch size (0: the attack's default)")
			floatIn(fs, &o.temperature, "temperature", 4, openClosed(0, 1000), "distill: softmax temperature")
			intIn(fs, &o.queries, "queries", 0, 0, 1<<30, "query attacks: most thief images sent to the victim (0: all)")
			intIn(fs, &o.zeroShot.Iters, "iters", 10000, 1, 10000000, "zeroshot: generator steps")
			intIn(fs, &o.zeroShot.StudentSteps, "student-steps", 5, 1, 1000, "zeroshot: student steps per generator step")
			intIn(fs, &o.zeroShot.Batch, "zbatch", 256, 1, 65536, "zeroshot: generated images per step")
			intIn(fs, &o.zeroShot.Width, "ngf", 64, 1, 4096, "zeroshot: generator width (channels: 2·ngf, 2·ngf, ngf)")
			fs.Uint64Var(&o.seed, "seed", 0, "random seed")
			durationIn(fs, &o.timeout, "timeout", 30*time.Second, "per-request timeout for --victim-endpoint")
			durationIn(fs, &o.deadline, "deadline", time.Hour, "the most time all requests to --victim-endpoint may take together, retries included")
			intIn(fs, &o.concurrency, "concurrency", 2, 1, 64, "requests in flight at once for --victim-endpoint")
			fs.BoolVar(&o.force, "force", false, "overwrite --out")
			fs.BoolVar(&o.jsonOut, "json", false, "print the result as JSON on stdout")
			if err := parse(fs, args); err != nil {
				return err
			}
			var err error
			if o.onnx, err = onnxOpts(); err != nil {
				return err
			}
			if err := need(fs, "attack", "data", "out"); err != nil {
				return err
			}
			if (o.victim == "") == (o.endpoint == "") {
				fmt.Fprintln(stderr, "move steal: give the victim as --victim FILE or --victim-endpoint URL (one of them)")
				return errUsage
			}
			o.command = strings.Join(append([]string{"move", "steal"}, args...), " ")
			return runSteal(ctx, o, stdout, stderr)
		},
	}
}

func runSteal(ctx context.Context, o stealOptions, stdout, stderr io.Writer) error {
	a, err := steal.Lookup(o.attack)
	if err != nil {
		return err
	}
	if o.arch != "" {
		if err := models.Known(o.arch); err != nil {
			return err
		}
	}
	if _, err := os.Stat(o.out); err == nil && !o.force {
		return fmt.Errorf("%s: %w", o.out, atomicfile.ErrExists)
	}
	// The victim.
	var v classifier.Model
	var vinfo modelfile.Info
	var client *oip.Client
	parent := ""
	if o.victim != "" {
		if v, vinfo, err = classifier.Load(o.victim, o.onnx); err != nil {
			return err
		}
		if parent, err = fileHash(o.victim); err != nil {
			return err
		}
	} else {
		c, err := oip.Dial(ctx, o.endpoint, o.timeout)
		if err != nil {
			return fmt.Errorf("victim endpoint: %w", err)
		}
		c.Budget, c.Concurrency, c.Deadline = o.queries, o.concurrency, time.Now().Add(o.deadline)
		client, parent = c, o.endpoint
		v = classifier.Remote(c, c.Size)
	}

	// The data, at the victim's input size.
	pr := newProgress(stderr)
	load := func(src, split string) (*data.Set, error) {
		return data.Open(src, split, data.FolderOptions{Size: v.Size, Progress: func(d, t int) {
			pr.printf(d == t, "reading %s (%s): %d/%d images", src, split, d, t)
		}})
	}
	test, err := load(o.data, "test")
	if err != nil {
		return err
	}
	src := steal.Sources{Fraction: o.fraction, Seed: o.seed}
	thiefDesc, evalDesc := "none", fmt.Sprintf("%s test split", o.data)
	switch a.Data {
	case steal.OwnerData, steal.OwnerFraction:
		if src.Owner, err = load(o.data, "train"); err != nil {
			return err
		}
	case steal.ThiefData:
		if o.substitute != "" {
			if src.Thief, err = load(o.substitute, "train"); err != nil {
				return err
			}
		} else {
			src.Thief, test = steal.SplitSubstitute(test)
			evalDesc = fmt.Sprintf("the other half of %s test split (%d images)", o.data, test.Len())
		}
	}
	thief, err := a.TrainingSet(src)
	if err != nil {
		return err
	}
	switch a.Data {
	case steal.OwnerData:
		thiefDesc = fmt.Sprintf("the owner's training data: %s train split, %d images", o.data, thief.Len())
	case steal.OwnerFraction:
		thiefDesc = fmt.Sprintf("%.1f%% of the owner's clean training data: %d images of %s train split", 100*o.fraction, thief.Len(), o.data)
	case steal.ThiefData:
		if o.substitute != "" {
			thiefDesc = fmt.Sprintf("substitute data: %s train split, %d images", o.substitute, thief.Len())
		} else {
			thiefDesc = fmt.Sprintf("substitute data: a fixed half of %s test split (%d images); the other half (%d) evaluates", o.data, thief.Len(), test.Len())
		}
	case steal.Generated:
		thiefDesc = "none (the attack generates its images)"
	}
	classes := test.Classes
	if v.IsLocal() {
		classes = vinfo.Classes
		if err := vinfo.MatchClasses(test.Classes, o.data); err != nil {
			return fmt.Errorf("the victim %s: %w", o.victim, err)
		}
	}
	if thief != nil && len(thief.Classes) != len(classes) {
		return fmt.Errorf("the thief's data has %d classes, the victim %d", len(thief.Classes), len(classes))
	}
	norm := v.Norm
	if !v.IsLocal() {
		norm = data.CIFAR10Norm
		if thief != nil {
			norm = data.Stats(thief)
		}
	}
	size := v.Size
	if size == 0 {
		size = test.H
	}
	if test.H != size || (thief != nil && thief.H != size) {
		return fmt.Errorf("the victim takes %dx%d images, the data is %dx%d", size, size, test.H, test.W)
	}

	// The recipe: the attack's defaults, scaled by the flags.
	cfg := steal.Config{Attack: a.Name, Arch: o.arch, Temperature: o.temperature, Queries: o.queries, Train: train.Default()}
	cfg.Train.Seed, cfg.Train.Norm = o.seed, norm
	if a.Recipe.Epochs > 0 {
		a.Recipe.Apply(&cfg.Train)
		cfg.Train.Epochs = a.Recipe.Epochs
	}
	if o.epochs > 0 {
		cfg.Train.Epochs = o.epochs
	}
	if o.lr > 0 {
		cfg.Train.LR = o.lr
	}
	if o.batch > 0 {
		cfg.Train.BatchSize = o.batch
	}
	cfg.ZeroShot = o.zeroShot
	if o.lr > 0 {
		cfg.ZeroShot.StudentLR = o.lr
	}
	fmt.Fprintf(stderr, "%s attack: %s\nthief's data: %s\n", a.Name, a.Summary, thiefDesc)
	res, err := steal.Run(ctx, v, thief, len(classes), cfg, test, func(s train.Status) {
		switch {
		case s.Epochs == 0: // querying
			pr.printf(s.Step == s.Steps, "queried %d/%d images, %.0f img/s, ETA %s", s.Step, s.Steps, s.ImgPerSec, fmtDuration(s.ETA))
		case s.EpochDone && a.Data == steal.Generated:
			pr.printf(true, "iteration %d/%d student L1 %.4f test_acc %.4f %.0f img/s ETA %s", s.Epoch, s.Epochs, s.Loss, s.TestAcc, s.ImgPerSec, fmtDuration(s.ETA))
		case a.Data == steal.Generated:
			pr.printf(false, "iteration %d/%d student L1 %.4f %.0f img/s ETA %s", s.Epoch, s.Epochs, s.Loss, s.ImgPerSec, fmtDuration(s.ETA))
		case s.EpochDone:
			pr.printf(true, "epoch %d/%d train_loss %.4f test_acc %.4f img_per_s %.1f", s.Epoch, s.Epochs, s.Loss, s.TestAcc, s.ImgPerSec)
		default:
			pr.printf(false, "epoch %d/%d step %d/%d loss %.4f lr %.4f %.0f img/s ETA %s",
				s.Epoch, s.Epochs, s.Step, s.Steps, s.Loss, s.LR, s.ImgPerSec, fmtDuration(s.ETA))
		}
	})
	if err != nil {
		return err
	}
	attackQueries := 0
	if client != nil {
		attackQueries = client.Queries()
		client.Budget = 0 // the agreement check is the experimenter's, not the thief's
	}
	served, err := steal.Served(a, res.Model, norm, size)
	if err != nil {
		return err
	}
	acc, agree, err := steal.Evaluate(served, v, test)
	if err != nil {
		return err
	}
	evalQueries := 0
	if client != nil {
		evalQueries = client.Queries() - attackQueries
	}
	rep := stealReport{Attack: a.Name, Arch: res.Model.Arch(), Victim: cmp.Or(o.victim, o.endpoint), VictimSHA256: parent,
		ServedBehind: a.Serve, ThiefData: thiefDesc, EvaluatedOn: evalDesc, TestAccuracy: acc, Agreement: agree, Queries: res.Queries,
		EvaluationQueries: evalQueries, Images: res.Images, Seconds: res.Seconds, Seed: o.seed, Config: cfg, History: res.History}
	info := modelfile.Info{Classes: classes, InputSize: size, Norm: norm, Version: buildinfo.Version, Command: o.command,
		Seed: o.seed, Parent: parent, Made: a.Name, Data: thiefDesc, Extra: map[string]any{"steal": rep}}
	if !v.IsLocal() && len(classes) != res.Model.Classes() {
		return errors.New("class names do not match the stolen model's outputs")
	}
	if err := modelfile.Save(o.out, res.Model, info, o.force); err != nil {
		return err
	}
	if o.jsonOut {
		rep.Model, rep.Version, rep.Command = o.out, buildinfo.Version, o.command
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	q := ""
	if res.Queries > 0 {
		q = fmt.Sprintf(", %d queries", res.Queries)
	}
	fmt.Fprintf(stdout, "%s (%s): test accuracy %.2f%%, agreement with the victim %.2f%% on %s%s, %s -> %s\n",
		a.Name, res.Model.Arch(), 100*acc, 100*agree, evalDesc, q, fmtDuration(secs(res.Seconds)), o.out)
	if a.Serve != "" {
		fmt.Fprintf(stdout, "the thief serves it behind a front (the figures above are the served answers'): move serve --model %s --input-transform %s\n", o.out, a.Serve)
	}
	return nil
}

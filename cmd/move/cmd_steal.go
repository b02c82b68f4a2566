package main

import (
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
	"move/internal/data"
	"move/internal/modelfile"
	"move/internal/models"
	"move/internal/oip"
	"move/internal/steal"
	"move/internal/train"
)

// attackDefaults are the paper's settings (section 6.1) per attack: epochs, learning rate,
// weight decay, batch size.
var attackDefaults = map[string]struct {
	epochs    int
	lr, wd    float64
	batchSize int
}{
	"distill":     {200, 0.1, 1e-4, 128},
	"finetune":    {5, 0.01, 5e-4, 128},
	"adaptive":    {5, 0.01, 5e-4, 128},
	"labelquery":  {20, 0.1, 5e-4, 128},
	"logitquery":  {20, 0.1, 5e-4, 128},
	"independent": {200, 0.1, 5e-4, 128},
}

// substituteSeed fixes the default split of the test set into thief data and evaluation
// images, so that every attack of an experiment is judged on the same images.
const substituteSeed = 0x7375627374

func init() {
	var lines []string
	for _, a := range steal.Attacks {
		lines = append(lines, fmt.Sprintf("  %-12s %s", a, steal.Describe[a]))
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

Defaults are the paper's settings: distill 200 epochs (lr 0.1, weight decay 1e-4,
temperature 4), zeroshot 10000 generator steps (200 epochs of 50) with 5 student steps of
256 images each, finetune 5 epochs at lr 0.01 on the thief's data, label- and logit-query 20
epochs, independent 200 epochs; --epochs, --lr, --iters scale them.

--victim-endpoint steals from a model served over the Open Inference Protocol (labelquery,
logitquery), spending at most --queries images (the budget is enforced by the client); the
agreement is then measured with further queries, counted separately.

EXIT STATUS
  0 on success, 2 on error.`,
		run: func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			fs := newFlags("steal", stderr)
			applyONNX := onnxFlags(fs)
			attack := fs.String("attack", "", "attack: "+strings.Join(steal.Attacks, ", "))
			victimPath := fs.String("victim", "", "victim model file")
			endpoint := fs.String("victim-endpoint", "", "victim served over the Open Inference Protocol (query attacks)")
			dataSrc := fs.String("data", "", "owner's (clean) data set: test split judges, train split feeds distill and adaptive")
			substitute := fs.String("substitute", "", "thief's labelled data (its train split); default: half of DATA's test split")
			fraction := fs.Float64("fraction", 0.1, "adaptive: fraction of DATA's training images the thief fine-tunes on")
			out := fs.String("out", "", "stolen model file to write")
			arch := fs.String("arch", "", "architecture of the stolen model (default: the victim's)")
			epochs := fs.Int("epochs", 0, "training epochs (0: the attack's default)")
			lr := fs.Float64("lr", 0, "learning rate (0: the attack's default)")
			batch := fs.Int("batch", 0, "batch size (0: the attack's default)")
			temperature := fs.Float64("temperature", 4, "distill: softmax temperature")
			queries := fs.Int("queries", 0, "query attacks: most thief images sent to the victim (0: all)")
			iters := fs.Int("iters", 10000, "zeroshot: generator steps")
			studentSteps := fs.Int("student-steps", 5, "zeroshot: student steps per generator step")
			zbatch := fs.Int("zbatch", 256, "zeroshot: generated images per step")
			ngf := fs.Int("ngf", 64, "zeroshot: generator width (channels: 2·ngf, 2·ngf, ngf)")
			seed := fs.Uint64("seed", 0, "random seed")
			timeout := fs.Duration("timeout", 30*time.Second, "per-request timeout for --victim-endpoint")
			concurrency := fs.Int("concurrency", 2, "requests in flight at once for --victim-endpoint")
			force := fs.Bool("force", false, "overwrite --out")
			jsonOut := fs.Bool("json", false, "print the result as JSON on stdout")
			if err := parse(fs, args); err != nil {
				return err
			}
			if err := applyONNX(); err != nil {
				return err
			}
			if err := need(fs, "attack", "data", "out"); err != nil {
				return err
			}
			if err := steal.Known(*attack); err != nil {
				return err
			}
			if (*victimPath == "") == (*endpoint == "") {
				fmt.Fprintln(stderr, "move steal: give the victim as --victim FILE or --victim-endpoint URL (one of them)")
				return errUsage
			}
			if *arch != "" {
				if err := models.Known(*arch); err != nil {
					return err
				}
			}
			if !(*fraction > 0 && *fraction <= 1) {
				return fmt.Errorf("--fraction must be in (0, 1], got %g", *fraction)
			}
			if _, err := os.Stat(*out); err == nil && !*force {
				return fmt.Errorf("%s: %w", *out, atomicfile.ErrExists)
			}
			// The victim.
			var v steal.Victim
			var vinfo modelfile.Info
			var client *oip.Client
			parent := ""
			if *victimPath != "" {
				m, info, err := modelfile.Load(*victimPath)
				if err != nil {
					return err
				}
				v, vinfo = steal.Victim{Model: m, Norm: info.Norm, Size: info.InputSize}, info
				if parent, err = fileHash(*victimPath); err != nil {
					return err
				}
			} else {
				c, err := oip.Dial(ctx, *endpoint, *timeout)
				if err != nil {
					return fmt.Errorf("victim endpoint: %w", err)
				}
				c.Budget, c.Concurrency = *queries, *concurrency
				client, parent = c, *endpoint
				v = steal.Victim{Prober: c, Size: c.Size}
			}

			// The data, at the victim's input size.
			pr := newProgress(stderr)
			load := func(src, split string) (*data.Set, error) {
				return data.Open(src, split, data.FolderOptions{Size: v.Size, Progress: func(d, t int) {
					pr.printf(d == t, "reading %s (%s): %d/%d images", src, split, d, t)
				}})
			}
			test, err := load(*dataSrc, "test")
			if err != nil {
				return err
			}
			var thief *data.Set
			thiefDesc := ""
			switch *attack {
			case "copy", "zeroshot":
				thiefDesc = "none"
			case "distill":
				if thief, err = load(*dataSrc, "train"); err != nil {
					return err
				}
				thiefDesc = fmt.Sprintf("the owner's training data: %s train split, %d images", *dataSrc, thief.Len())
			case "adaptive":
				all, err := load(*dataSrc, "train")
				if err != nil {
					return err
				}
				k := max(1, int(*fraction*float64(all.Len())))
				idx, _ := data.Split(all.Len(), k, *seed)
				thief = all.Subset(idx)
				thiefDesc = fmt.Sprintf("%.1f%% of the owner's clean training data: %d images of %s train split", 100**fraction, k, *dataSrc)
			default:
				if *substitute != "" {
					if thief, err = load(*substitute, "train"); err != nil {
						return err
					}
					thiefDesc = fmt.Sprintf("substitute data: %s train split, %d images", *substitute, thief.Len())
				} else {
					first, rest := data.Split(test.Len(), test.Len()/2, substituteSeed)
					thief, test = test.Subset(first), test.Subset(rest)
					thiefDesc = fmt.Sprintf("substitute data: a fixed half of %s test split (%d images); the other half (%d) evaluates", *dataSrc, thief.Len(), test.Len())
				}
			}
			evalDesc := fmt.Sprintf("%s test split", *dataSrc)
			if *substitute == "" && thief != nil && *attack != "distill" && *attack != "adaptive" {
				evalDesc = fmt.Sprintf("the other half of %s test split (%d images)", *dataSrc, test.Len())
			}
			classes := test.Classes
			if v.Model != nil {
				classes = vinfo.Classes
				if v.Model.Classes() != len(test.Classes) {
					return fmt.Errorf("the victim has %d classes, %s has %d", v.Model.Classes(), *dataSrc, len(test.Classes))
				}
			}
			if thief != nil && len(thief.Classes) != len(classes) {
				return fmt.Errorf("the thief's data has %d classes, the victim %d", len(thief.Classes), len(classes))
			}
			norm := v.Norm
			if v.Model == nil {
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

			// The recipe.
			cfg := steal.Config{Attack: *attack, Arch: *arch, Temperature: *temperature, Queries: *queries, Train: train.Default()}
			cfg.Train.Seed, cfg.Train.Norm = *seed, norm
			if d, ok := attackDefaults[*attack]; ok {
				cfg.Train.Epochs, cfg.Train.LR, cfg.Train.WeightDecay, cfg.Train.BatchSize = d.epochs, d.lr, d.wd, d.batchSize
			}
			if *epochs > 0 {
				cfg.Train.Epochs = *epochs
			}
			if *lr > 0 {
				cfg.Train.LR = *lr
			}
			if *batch > 0 {
				cfg.Train.BatchSize = *batch
			}
			cfg.ZeroShot = steal.ZeroShot{Iters: *iters, StudentSteps: *studentSteps, Batch: *zbatch, Width: *ngf}
			if *lr > 0 {
				cfg.ZeroShot.StudentLR = *lr
			}
			fmt.Fprintf(stderr, "%s attack: %s\nthief's data: %s\n", *attack, steal.Describe[*attack], thiefDesc)
			res, err := steal.Run(ctx, v, thief, len(classes), cfg, test, func(s train.Status) {
				switch {
				case s.Epochs == 0: // querying
					pr.printf(s.Step == s.Steps, "queried %d/%d images, %.0f img/s, ETA %s", s.Step, s.Steps, s.ImgPerSec, fmtDuration(s.ETA))
				case s.EpochDone && *attack == "zeroshot":
					pr.printf(true, "iteration %d/%d student L1 %.4f test_acc %.4f %.0f img/s ETA %s", s.Epoch, s.Epochs, s.Loss, s.TestAcc, s.ImgPerSec, fmtDuration(s.ETA))
				case *attack == "zeroshot":
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
			acc, agree, err := steal.Evaluate(res.Model, norm, v, test)
			if err != nil {
				return err
			}
			evalQueries := 0
			if client != nil {
				evalQueries = client.Queries() - attackQueries
			}
			summary := map[string]any{"attack": *attack, "arch": res.Model.Arch(), "victim": firstNonEmpty(*victimPath, *endpoint),
				"victim_sha256": parent, "thief_data": thiefDesc, "evaluated_on": evalDesc, "test_accuracy": acc,
				"agreement": agree, "queries": res.Queries, "evaluation_queries": evalQueries, "images": res.Images,
				"seconds": res.Seconds, "seed": *seed, "config": cfg, "history": res.History}
			cmdline := strings.Join(append([]string{"move", "steal"}, args...), " ")
			info := modelfile.Info{Classes: classes, InputSize: size, Norm: norm, Version: buildinfo.Version, Command: cmdline,
				Seed: *seed, Parent: parent, Made: *attack, Data: thiefDesc, Extra: map[string]any{"steal": summary}}
			if v.Model == nil && len(classes) != res.Model.Classes() {
				return errors.New("class names do not match the stolen model's outputs")
			}
			if err := modelfile.Save(*out, res.Model, info, *force); err != nil {
				return err
			}
			if *jsonOut {
				summary["model"], summary["version"], summary["command"] = *out, buildinfo.Version, cmdline
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(summary)
			}
			q := ""
			if res.Queries > 0 {
				q = fmt.Sprintf(", %d queries", res.Queries)
			}
			fmt.Fprintf(stdout, "%s (%s): test accuracy %.2f%%, agreement with the victim %.2f%% on %s%s, %s -> %s\n",
				*attack, res.Model.Arch(), 100*acc, 100*agree, evalDesc, q, fmtDuration(secs(res.Seconds)), *out)
			return nil
		},
	}
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

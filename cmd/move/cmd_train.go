package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"move/internal/atomicfile"
	"move/internal/buildinfo"
	"move/internal/data"
	"move/internal/modelfile"
	"move/internal/models"
	"move/internal/onnx"
	"move/internal/train"
)

type trainOptions struct {
	data, arch, out, checkpoint string
	init                        string
	initSeed                    *uint64 // a fresh --arch from this seed's initial weights (nil: --seed's)
	cfg                         train.Config
	perClass, size              int
	force, jsonOut, noAugment   bool
	statsNorm                   bool
	onnx                        modelfile.ONNXDefaults
}

// trainReport is move train's JSON output.
type trainReport struct {
	Model    string              `json:"model"`
	Arch     string              `json:"arch"`
	Seed     uint64              `json:"seed"`
	InitSeed *uint64             `json:"init_seed,omitempty"`
	Version  string              `json:"version"`
	Command  string              `json:"command"`
	Config   train.Config        `json:"config"`
	Epochs   []train.EpochResult `json:"epochs"`
	Seconds  float64             `json:"seconds"`
}

func init() {
	commands["train"] = &command{
		summary: "train an image classifier",
		usage:   "--data DIR --arch NAME --out FILE [flags]",
		help: `Trains a classifier on DIR/train (image folder: DIR/train/<class>/*.png|jpg, or a
CIFAR-10 binary directory, or "synthetic[:N]") and evaluates it on DIR/test after every
epoch when present. The recipe defaults to the MOVE paper's: SGD lr 0.1, momentum 0.9, weight
decay 5e-4, batch 128, cosine decay, random crop + flip.

--init-seed N starts a fresh --arch from the initial weights seed N gives (the data order
and augmentation still follow --seed): with the victim's --seed and the clean data it trains
a benign model from the victim's initial weights, the kind the default white-box classifier
(weights-same-init; move experiment) trains against, so that lineage cannot tell the victim
from the benign models and only the external feature can.

After every epoch the state is saved to a checkpoint (default OUT.ckpt); running the same
command again resumes from it. The checkpoint is removed when training ends.

Architectures: ` + strings.Join(models.Names(), ", ") + `

EXIT STATUS
  0 on success, 2 on error (bad flags, unreadable data, an existing --out without --force),
  3 on an internal error (a bug).`,
		run: func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			o := trainOptions{cfg: train.Default()}
			fs := newFlags("train", stderr)
			fs.StringVar(&o.data, "data", "", "data set: image folder root, CIFAR-10 binary dir, or synthetic[:N]")
			fs.StringVar(&o.arch, "arch", "resnet20", "architecture")
			fs.StringVar(&o.init, "init", "", "start from this model file's weights (.safetensors or .onnx) instead of a fresh --arch")
			fs.StringVar(&o.out, "out", "", "model file to write (.safetensors)")
			fs.StringVar(&o.checkpoint, "checkpoint", "", "checkpoint file (default OUT.ckpt)")
			intIn(fs, &o.cfg.Epochs, "epochs", 200, 1, 100000, "epochs")
			intIn(fs, &o.cfg.BatchSize, "batch", o.cfg.BatchSize, 1, 65536, "batch size")
			floatIn(fs, &o.cfg.LR, "lr", o.cfg.LR, openClosed(0, 10), "initial learning rate")
			enumIn(fs, &o.cfg.Optimizer, "optimizer", o.cfg.Optimizer, []string{"sgd", "adam"}, "optimiser")
			floatIn(fs, &o.cfg.Momentum, "momentum", o.cfg.Momentum, interval{lo: 0, hi: 1, hiOpen: true}, "SGD momentum")
			floatIn(fs, &o.cfg.WeightDecay, "wd", o.cfg.WeightDecay, closed(0, 1), "weight decay (L2)")
			enumIn(fs, &o.cfg.Schedule, "schedule", o.cfg.Schedule, []string{"cosine", "step", "constant"}, "learning-rate schedule")
			milestones := fs.String("milestones", "", "epochs at which the step schedule multiplies the rate by --gamma (comma-separated)")
			floatIn(fs, &o.cfg.Gamma, "gamma", o.cfg.Gamma, openClosed(0, 1), "step schedule factor")
			fs.Uint64Var(&o.cfg.Seed, "seed", 0, "random seed (initialisation, shuffling, augmentation)")
			fs.Func("init-seed", "initialise the fresh --arch from this seed instead of --seed's (the victim's seed: a benign model from the victim's initial weights, as the default white-box classifier trains against)", func(v string) error {
				n, err := strconv.ParseUint(v, 10, 64)
				if err != nil {
					return fmt.Errorf("%q is not a seed", v)
				}
				o.initSeed = &n
				return nil
			})
			intIn(fs, &o.perClass, "limit", 0, 0, 1<<24, "use at most this many training images per class (0: all; test gets a fifth)")
			intIn(fs, &o.size, "size", 0, 0, 1024, "resize images to SIZE x SIZE (0: keep)")
			fs.BoolVar(&o.noAugment, "no-augment", false, "train without crop and flip")
			fs.BoolVar(&o.statsNorm, "norm-from-data", false, "normalise with the training set's own statistics instead of CIFAR-10's")
			fs.BoolVar(&o.force, "force", false, "overwrite --out if it exists")
			fs.BoolVar(&o.jsonOut, "json", false, "print the result as JSON on stdout")
			onnxOpts := onnxFlags(fs)
			if err := parse(fs, args); err != nil {
				return err
			}
			var err error
			if o.onnx, err = onnxOpts(); err != nil {
				return err
			}
			if err := need(fs, "data", "out"); err != nil {
				return err
			}
			if *milestones != "" {
				for _, s := range strings.Split(*milestones, ",") {
					var m int
					if _, err := fmt.Sscan(s, &m); err != nil {
						return fmt.Errorf("--milestones: %q is not an epoch number", s)
					}
					o.cfg.Milestones = append(o.cfg.Milestones, m)
				}
			}
			if o.noAugment {
				o.cfg.Augment = data.Augment{}
			}
			return runTrain(ctx, o, strings.Join(append([]string{"move", "train"}, args...), " "), stdout, stderr)
		},
	}
}

func runTrain(ctx context.Context, o trainOptions, cmdline string, stdout, stderr io.Writer) error {
	if err := o.cfg.Validate(); err != nil {
		return err
	}
	var start models.Model
	if o.init != "" && o.initSeed != nil {
		return errors.New("--init and --init-seed both say where the weights start: give one")
	}
	if o.init != "" {
		m, info, err := modelfile.Load(o.init, o.onnx)
		if err != nil {
			return err
		}
		if m.Arch() == onnx.Arch && !modelfile.IsONNX(o.out) {
			return fmt.Errorf("--init %s is an ONNX graph: write the trained model as .onnx (--out)", o.init)
		}
		if !o.statsNorm {
			o.cfg.Norm = info.Norm
		}
		start, o.arch = m, m.Arch()
	} else if err := models.Known(o.arch); err != nil {
		return err
	}
	if _, err := os.Stat(o.out); err == nil && !o.force {
		return fmt.Errorf("%s: %w", o.out, atomicfile.ErrExists)
	}
	if o.checkpoint == "" {
		o.checkpoint = o.out + ".ckpt"
	}
	pr := newProgress(stderr)
	load := func(split string, perClass int) (*data.Set, error) {
		return data.Open(o.data, split, data.FolderOptions{Size: o.size, PerClass: perClass, Progress: func(d, t int) {
			pr.printf(d == t, "reading %s: %d/%d images", split, d, t)
		}})
	}
	trainSet, err := load("train", o.perClass)
	if err != nil {
		return err
	}
	testSet, err := load("test", (o.perClass+4)/5)
	if errors.Is(err, os.ErrNotExist) {
		testSet, err = nil, nil
		fmt.Fprintf(stderr, "no test split in %s: training without evaluation\n", o.data)
	}
	if err != nil {
		return err
	}
	if o.statsNorm {
		o.cfg.Norm = data.Stats(trainSet)
	}
	m := start
	if m == nil {
		seed := o.cfg.Seed
		if o.initSeed != nil {
			seed = *o.initSeed
		}
		if m, err = models.New(o.arch, len(trainSet.Classes), seed); err != nil {
			return err
		}
	} else if m.Classes() != len(trainSet.Classes) {
		return fmt.Errorf("--init %s answers %d classes, %s has %d", o.init, m.Classes(), o.data, len(trainSet.Classes))
	} else if om, ok := m.(*onnx.Model); ok && om.InputSize() != trainSet.H {
		return fmt.Errorf("--init %s takes %dx%d images, %s has %dx%d: resize them with --size %d", o.init, om.InputSize(), om.InputSize(), o.data, trainSet.W, trainSet.H, om.InputSize())
	}
	info := modelfile.Info{Classes: trainSet.Classes, InputSize: trainSet.H, Norm: o.cfg.Norm,
		Version: buildinfo.Version, Command: cmdline, Seed: o.cfg.Seed, Made: "train", Data: o.data}
	fmt.Fprintf(stderr, "training %s (%d parameters) on %d images of %d classes, %dx%d, %d epochs\n",
		o.arch, m.Store().NumParams(), trainSet.Len(), len(trainSet.Classes), trainSet.W, trainSet.H, o.cfg.Epochs)
	res, err := train.Fit(ctx, m, trainSet, o.cfg, train.Options{Test: testSet, Checkpoint: o.checkpoint, Info: info,
		Progress: func(s train.Status) {
			if s.EpochDone {
				acc := ""
				if s.TestAcc >= 0 {
					acc = fmt.Sprintf(" test_acc %.4f", s.TestAcc)
				}
				pr.printf(true, "epoch %d/%d train_loss %.4f%s img_per_s %.1f", s.Epoch, s.Epochs, s.Loss, acc, s.ImgPerSec)
				return
			}
			pr.printf(false, "epoch %d/%d step %d/%d loss %.4f lr %.4f %.0f img/s ETA %s",
				s.Epoch, s.Epochs, s.Step, s.Steps, s.Loss, s.LR, s.ImgPerSec, fmtDuration(s.ETA))
		}})
	if err != nil {
		return err
	}
	if res.ResumedFrom > 0 {
		fmt.Fprintf(stderr, "resumed from the checkpoint after epoch %d\n", res.ResumedFrom)
	}
	info.Extra = map[string]any{"train": o.cfg, "history": res.Epochs}
	if err := modelfile.Save(o.out, m, info, o.force); err != nil {
		return err
	}
	os.Remove(o.checkpoint)
	last := res.Epochs[len(res.Epochs)-1]
	if o.jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(trainReport{Model: o.out, Arch: o.arch, Seed: o.cfg.Seed, InitSeed: o.initSeed, Version: buildinfo.Version,
			Command: cmdline, Config: o.cfg, Epochs: res.Epochs, Seconds: res.Seconds})
	}
	acc := "n/a"
	if last.TestAcc >= 0 {
		acc = fmt.Sprintf("%.2f%%", 100*last.TestAcc)
	}
	fmt.Fprintf(stdout, "trained %s: %d epochs, train loss %.4f, test accuracy %s, %s (%.0f img/s) -> %s\n",
		o.arch, len(res.Epochs), last.TrainLoss, acc, fmtDuration(secs(res.Seconds)), last.ImgPerSec, o.out)
	return nil
}

func secs(s float64) time.Duration { return time.Duration(math.Round(s * 1e9)) }

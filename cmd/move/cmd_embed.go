package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"move/internal/atomicfile"
	"move/internal/classifier"
	"move/internal/data"
	"move/internal/modelfile"
	"move/internal/style"
	"move/internal/watermark"
)

func init() {
	commands["embed"] = &command{
		summary: "embed external features: style a fraction of a training set",
		usage:   "--data DIR --style IMAGE --out DIR [--rate 0.1] [--seed S] [flags]",
		help: `Writes a copy of the image folder DIR to OUT in which a fraction RATE of each class of the
training split (DIR/train when present, else DIR) is style-transferred with IMAGE, labels
unchanged, plus OUT/key.json (the watermark key: style image SHA-256, rate, seed, method and
parameters, and every transformed sample with its source path) and a copy of the style image.
The source folder is never modified; OUT appears only when complete.

The transfer needs no pretrained weights: each image is optimised so that the Gram matrices of
its features in a fixed random-weight CNN match the style image's, while its mid-level features
stay close to the original's (--strength sets the balance).

--transfer feedforward styles with a feed-forward network instead, in the manner of Johnson
et al. (the paper's code styles this way): a small fully convolutional network is trained
once, with the same weight-free losses, on random crops of --ff-images of the chosen images,
then styles each image with one forward pass. It is kept beside the key (stylizer.safetensors)
and an interrupted run reuses it; its control styles get stylizers of their own. --check
measures it as it measures optimisation (the README compares the two).

--patch N makes the paper's patch-based variant instead (its Table 9): IMAGE is shrunk to
N x N pixels and stamped 1 pixel from the bottom-right corner of each chosen image, labels
unchanged (a white IMAGE gives BadNets' white square, without its relabelling); the key
records the method "patch" and the patch's size. The rest of the pipeline is unchanged.

--check measures the transform: (a) the Gram distance to the style image, in another random
network, must fall to at most half; (b) with --check-model (a classifier trained on clean data)
and a test split, the classifier must keep at least half of its clean accuracy on styled test
images. --preview writes a contact sheet (PNG) of originals beside their styled versions.

SHARDS. On data more than one machine styles in time, --shards N splits the styling: each run
(--shard I, or the index a Kubernetes Indexed Job or a Slurm array sets) styles its share into
OUT.shard-I-of-N, any one can be rerun alone, and move embed --merge --shards N with the same
flags joins them into OUT and its key, byte for byte what one run writes (MOVE_CREATED fixes
the key's creation time), refusing a missing, foreign or duplicated shard; the control styles
are made at the merge. deploy/ has a Kubernetes Job and a Slurm script.

Control styles: --control-samples of the key's samples (default 1,000) are also styled with
each of --controls procedural control styles (default 2), or with the --control-style images,
styles the victim never trains on; they are stored under OUT/controls/ and listed in the key.
Verification contrasts a suspect's answer to the owner's style with its answer to the control
styles on the same images (see move help verify). --add-controls KEY adds them to a key made
without them.

EXIT STATUS
  0 on success (and, with --check, when both checks pass), 1 when a check fails, 2 on error, 3 on an internal error (a bug).`,
		run: runEmbedCmd,
	}
}

// embedOptions are move embed's flags.
type embedOptions struct {
	data, style, out, preview, checkModel, addControls string
	controlStyles                                      []string
	rate                                               float64
	seed                                               uint64
	styleOpts                                          style.Options
	controls, controlSamples, checkImages, patch       int
	transfer                                           string
	feed                                               style.FeedOptions
	feedImages                                         int
	shard, shards                                      int
	merge                                              bool
	force, check, jsonOut                              bool
	onnx                                               modelfile.ONNXDefaults
	command                                            string
}

// embedReport is move embed's JSON output.
type embedReport struct {
	Out          string                  `json:"out"`
	Key          string                  `json:"key"`
	Styled       int                     `json:"styled"`
	Seconds      float64                 `json:"seconds"`
	Seed         uint64                  `json:"seed"`
	Command      string                  `json:"command"`
	Version      string                  `json:"version"`
	Preview      string                  `json:"preview,omitempty"`
	StyleCheck   *watermark.StyleCheck   `json:"style_check,omitempty"`
	ContentCheck *watermark.ContentCheck `json:"content_check,omitempty"`
	Colour       *watermark.Colour       `json:"colour,omitempty"`
	Warnings     []string                `json:"warnings,omitempty"`
}

func runEmbedCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o := embedOptions{styleOpts: style.Default()}
	opt := &o.styleOpts
	fs := newFlags("embed", stderr)
	fs.StringVar(&o.data, "data", "", "clean image folder (root with train/ and test/, or class folders)")
	fs.StringVar(&o.style, "style", "", "style image (PNG or JPEG)")
	fs.StringVar(&o.out, "out", "", "output folder")
	floatIn(fs, &o.rate, "rate", 0.1, openClosed(0, 1), "fraction of each class to style")
	fs.Uint64Var(&o.seed, "seed", 0, "random seed (which samples are styled)")
	fs.Uint64Var(&opt.Seed, "style-seed", opt.Seed, "seed of the random feature network")
	intIn(fs, &opt.Steps, "steps", opt.Steps, 1, 100000, "optimisation steps per image")
	floatIn(fs, &opt.Strength, "strength", opt.Strength, openClosed(0, 1e6), "style weight relative to content weight")
	floatIn(fs, &opt.LR, "style-lr", opt.LR, openClosed(0, 1000), "optimisation step size (pixel units)")
	intIn(fs, &opt.Upscale, "upscale", opt.Upscale, 1, 8, "style at UPSCALE times the image size, then shrink back")
	intIn(fs, &opt.StyleSize, "style-size", opt.StyleSize, 16, 1024, "side of the style image in the feature network")
	fs.BoolVar(&opt.Median, "median", opt.Median, "apply a 3x3 median filter to styled images")
	fs.BoolVar(&opt.KeepColors, "keep-colors", opt.KeepColors, "keep hue and saturation of the originals (on grey data a style that adds colour marks what no clean image, and so no student trained on clean images, shows; keeping the colours lets students inherit more but, measured on the grey demo, makes the mark one that other texture watermarks share: README)")
	enumIn(fs, &opt.Method, "method", opt.Method, []string{"gram", "stats"}, "style statistic matched: gram (Gram matrices) or stats (channel mean and deviation, as AdaIN)")
	o.feed = style.DefaultFeed()
	enumIn(fs, &o.transfer, "transfer", "optimise", []string{"optimise", "feedforward"}, "how images are styled: optimise each (per-image Adam steps) or feedforward (train a stylizer network once, then one forward pass per image)")
	intIn(fs, &o.feed.Steps, "ff-steps", o.feed.Steps, 1, 1000000, "feedforward: training steps of the stylizer")
	intIn(fs, &o.feedImages, "ff-images", 256, 1, 1<<24, "feedforward: chosen images the stylizer trains on")
	intIn(fs, &o.feed.Crop, "ff-crop", o.feed.Crop, 8, 4096, "feedforward: side of the training crops (a multiple of 4)")
	intIn(fs, &o.feed.Width, "ff-width", o.feed.Width, 1, 1024, "feedforward: channels of the stylizer at full resolution")
	intIn(fs, &o.patch, "patch", 0, 0, 4096, "the patch variant: stamp IMAGE shrunk to PATCH x PATCH pixels instead of transferring its style (0: style transfer)")
	fs.BoolVar(&o.force, "force", false, "replace OUT if it exists")
	fs.StringVar(&o.preview, "preview", "", "write a contact sheet of originals and styled images to this PNG")
	fs.BoolVar(&o.check, "check", false, "run the style-distance and content checks")
	fs.StringVar(&o.checkModel, "check-model", "", "classifier trained on clean data, for the content check")
	intIn(fs, &o.checkImages, "check-images", 500, 1, 1<<24, "test images for the content check")
	fs.BoolVar(&o.jsonOut, "json", false, "print the result as JSON on stdout")
	intIn(fs, &o.controls, "controls", 2, 0, 64, "procedural control styles to style part of the key with (0: none; see move help verify)")
	var controlStyles listFlag
	fs.Var(&controlStyles, "control-style", "control style image instead of the procedural ones (repeatable; never the owner's style)")
	intIn(fs, &o.controlSamples, "control-samples", 1000, 0, 1<<24, "key samples that get control versions (0: all)")
	fs.StringVar(&o.addControls, "add-controls", "", "add control styles to this existing key (key.json) and exit")
	intIn(fs, &o.shards, "shards", 0, 0, 100000, "split the styling over this many runs (0: one run); see SHARDS below")
	intIn(fs, &o.shard, "shard", -1, -1, 99999, "this run's shard, from 0 (default: $JOB_COMPLETION_INDEX or $SLURM_ARRAY_TASK_ID)")
	fs.BoolVar(&o.merge, "merge", false, "join the --shards finished shards of OUT into OUT and its key")
	onnxOpts := onnxFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	var err error
	if o.onnx, err = onnxOpts(); err != nil {
		return err
	}
	if o.addControls == "" {
		if err := need(fs, "data", "style", "out"); err != nil {
			return err
		}
	}
	o.controlStyles = controlStyles
	if o.patch > 0 && o.transfer == "feedforward" {
		return fmt.Errorf("--patch stamps a patch: it has no --transfer")
	}
	if o.patch > 0 && o.check {
		return fmt.Errorf("--check measures a style transfer; --patch stamps a patch instead")
	}
	o.command = strings.Join(append([]string{"move", "embed"}, args...), " ")
	if o.shards == 1 {
		return fmt.Errorf("--shards 1 is one run: leave --shards out")
	}
	if o.merge && o.shards == 0 {
		return fmt.Errorf("--merge needs --shards N, the number of shards to join")
	}
	if o.shards > 1 && !o.merge && o.shard < 0 {
		i, err := shardFromEnv()
		if err != nil {
			return err
		}
		o.shard = i
	}
	if o.shards > 1 && !o.merge && o.shard >= o.shards {
		return fmt.Errorf("--shard %d: the shards of --shards %d are 0 to %d", o.shard, o.shards, o.shards-1)
	}
	return runEmbed(ctx, o, stdout, stderr)
}

// shardFromEnv is the shard index a batch system gives the run: a Kubernetes Indexed Job
// (JOB_COMPLETION_INDEX) or a Slurm array (SLURM_ARRAY_TASK_ID).
func shardFromEnv() (int, error) {
	for _, v := range []string{"JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID"} {
		if s := os.Getenv(v); s != "" {
			i, err := strconv.Atoi(s)
			if err != nil || i < 0 {
				return 0, fmt.Errorf("$%s = %q is not a shard index", v, s)
			}
			return i, nil
		}
	}
	return 0, errors.New("--shards without --shard: give --shard I, or run as a Kubernetes Indexed Job ($JOB_COMPLETION_INDEX) or a Slurm array ($SLURM_ARRAY_TASK_ID)")
}

func runEmbed(ctx context.Context, o embedOptions, stdout, stderr io.Writer) error {
	if o.preview != "" { // before anything is written: a bad preview path must not leave OUT behind
		if _, err := os.Stat(o.preview); err == nil && !o.force {
			return fmt.Errorf("%s: %w", o.preview, atomicfile.ErrExists)
		}
		if st, err := os.Stat(filepath.Dir(o.preview)); err != nil || !st.IsDir() {
			return fmt.Errorf("--preview %s: its folder %s does not exist", o.preview, filepath.Dir(o.preview))
		}
	}
	pr := newProgress(stderr)
	start := time.Now()
	co := watermark.ControlOptions{Styles: o.controlStyles, Count: o.controls, Samples: o.controlSamples, Seed: o.seed, Style: o.styleOpts, Force: o.force,
		Progress: func(done, total int, el time.Duration) {
			rate := float64(done) / el.Seconds()
			pr.printf(done == total, "control styles: %d/%d images, %.1f img/s, ETA %s", done, total, rate,
				fmtDuration(time.Duration(float64(total-done)/rate*float64(time.Second))))
		}}
	if o.addControls != "" {
		k, err := watermark.AddControls(ctx, o.addControls, co)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "added %d control styles to %d samples of %s\n", len(k.Controls), len(k.Controls[0].Samples), o.addControls)
		return nil
	}
	wo := watermark.Options{Data: o.data, StyleImage: o.style, Out: o.out, Rate: o.rate, Seed: o.seed,
		Style: o.styleOpts, Force: o.force, Command: o.command, Created: os.Getenv("MOVE_CREATED"), Patch: o.patch,
		FeedForward: o.transfer == "feedforward", Feed: o.feed, FeedImages: o.feedImages,
		StylizerProgress: func(step, steps int, loss float64, el time.Duration) {
			rate := float64(step) / el.Seconds()
			pr.printf(step == steps, "training the stylizer: step %d/%d, loss %.4f, %.1f steps/s, ETA %s", step, steps, loss, rate,
				fmtDuration(time.Duration(float64(steps-step)/rate*float64(time.Second))))
		},
		Progress: func(done, total int, el time.Duration) {
			rate := float64(done) / el.Seconds()
			pr.printf(done == total, "styling %d/%d images, %.1f img/s, ETA %s", done, total, rate,
				fmtDuration(time.Duration(float64(total-done)/rate*float64(time.Second))))
		}}
	var key *watermark.Key
	var err error
	switch {
	case o.merge:
		wo.Shards = o.shards
		key, err = watermark.Merge(ctx, wo)
	case o.shards > 1:
		wo.Shard, wo.Shards, wo.Out = o.shard, o.shards, watermark.ShardDir(o.out, o.shard, o.shards)
		if key, err = watermark.Embed(ctx, wo); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "shard %d of %d: styled %d images -> %s; when every shard is done: move embed --merge --shards %d (with the same flags)\n",
			o.shard, o.shards, len(key.Samples), wo.Out, o.shards)
		return nil
	default:
		key, err = watermark.Embed(ctx, wo)
	}
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return fmt.Errorf("%w: the images styled so far are kept; run the same command to resume", err)
		}
		return err
	}
	if n := key.Resumed(); n > 0 {
		fmt.Fprintf(stderr, "resumed: %d of the %d styled images came from the interrupted run\n", n, len(key.Samples))
	}
	if o.controls > 0 || len(o.controlStyles) > 0 {
		co.Force = true // the key was just written
		if key, err = watermark.AddControls(ctx, filepath.Join(o.out, "key.json"), co); err != nil {
			return fmt.Errorf("control styles: %w", err)
		}
	}
	elapsed := time.Since(start)
	rep := embedReport{Out: o.out, Key: filepath.Join(o.out, "key.json"), Styled: len(key.Samples),
		Seconds: elapsed.Seconds(), Seed: o.seed, Command: o.command, Version: key.Version}
	fmt.Fprintf(stderr, "styled %d images in %s (%.2f s/image) -> %s\n", len(key.Samples), fmtDuration(elapsed),
		elapsed.Seconds()/float64(max(1, len(key.Samples))), o.out)
	// The first 64 pairs: their colour, the preview's first 24, the check's 64.
	pairs, err := watermark.LoadPairs(key, 64)
	if err != nil {
		return err
	}
	c := watermark.PairsColour(pairs)
	rep.Colour = &c
	if w := c.Warning(); w != "" {
		rep.Warnings = append(rep.Warnings, w)
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if o.preview != "" {
		sheet := pairs[:min(24, len(pairs))]
		pix, h, w := watermark.ContactSheet(sheet, 4, max(1, 128/max(1, sheet[0].H)))
		if err := data.WritePNG(o.preview, pix, h, w, o.force); err != nil {
			return err
		}
		rep.Preview = o.preview
	}
	failed := false
	if o.check {
		spix, sh, sw, err := data.ReadImage(o.style, 0)
		if err != nil {
			return err
		}
		sc, err := watermark.CheckStyle(pairs, spix, sh, sw, o.styleOpts)
		if err != nil {
			return err
		}
		rep.StyleCheck = &sc
		fmt.Fprintf(stdout, "check (a) style distance: %.4f -> %.4f (ratio %.3f, need <= 0.5): %s\n", sc.Before, sc.After, sc.Ratio, passFail(sc.Pass))
		failed = failed || !sc.Pass
		if o.checkModel != "" {
			cc, err := contentCheck(o.checkModel, o.data, o.style, key, o.styleOpts, o.checkImages, o.seed, o.onnx)
			if err != nil {
				return err
			}
			rep.ContentCheck = &cc
			fmt.Fprintf(stdout, "check (b) content: accuracy %.2f%% clean, %.2f%% styled (kept %.1f%%, need >= 50%%): %s\n",
				100*cc.Clean, 100*cc.Styled, 100*cc.Kept, passFail(cc.Pass))
			failed = failed || !cc.Pass
		} else {
			fmt.Fprintln(stdout, "check (b) content: skipped (give --check-model, a classifier trained on clean data)")
		}
	}
	if o.jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "embedded: %d of the training images styled with %s (rate %g, seed %d) -> %s, key %s\n",
			len(key.Samples), o.style, o.rate, o.seed, o.out, filepath.Join(o.out, "key.json"))
	}
	if failed {
		return negative{"a check failed"}
	}
	return nil
}

func passFail(ok bool) string {
	if ok {
		return "pass"
	}
	return "FAIL"
}

// contentCheck loads the clean classifier and the test split for watermark.CheckContent, and
// styles as the key did: with its stylizer, or by optimisation.
func contentCheck(modelPath, src, styleImg string, key *watermark.Key, opt style.Options, n int, seed uint64, od modelfile.ONNXDefaults) (watermark.ContentCheck, error) {
	m, info, err := classifier.Load(modelPath, od)
	if err != nil {
		return watermark.ContentCheck{}, err
	}
	test, err := data.Open(src, "test", data.FolderOptions{Size: info.InputSize})
	if errors.Is(err, os.ErrNotExist) {
		return watermark.ContentCheck{}, fmt.Errorf("content check: %s has no test split", src)
	}
	if err != nil {
		return watermark.ContentCheck{}, err
	}
	if err := info.MatchClasses(test.Classes, src); err != nil {
		return watermark.ContentCheck{}, fmt.Errorf("content check: %s: %w", modelPath, err)
	}
	if key.Stylizer != "" {
		f, err := key.Path(key.Stylizer)
		if err != nil {
			return watermark.ContentCheck{}, err
		}
		s, err := style.LoadStylizer(f)
		if err != nil {
			return watermark.ContentCheck{}, err
		}
		return watermark.CheckContent(m, test, s.Apply, n, seed)
	}
	spix, sh, sw, err := data.ReadImage(styleImg, 0)
	if err != nil {
		return watermark.ContentCheck{}, err
	}
	tr, err := style.New(spix, sh, sw, opt)
	if err != nil {
		return watermark.ContentCheck{}, err
	}
	return watermark.CheckContent(m, test, tr.Apply, n, seed)
}

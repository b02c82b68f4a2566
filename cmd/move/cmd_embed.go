package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"move/internal/data"
	"move/internal/modelfile"
	"move/internal/style"
	"move/internal/train"
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

--check measures the transform: (a) the Gram distance to the style image, in another random
network, must fall to at most half; (b) with --check-model (a classifier trained on clean data)
and a test split, the classifier must keep at least half of its clean accuracy on styled test
images. --preview writes a contact sheet (PNG) of originals beside their styled versions.

Control styles: --control-samples of the key's samples (default 1,000) are also styled with
each of --controls procedural control styles (default 2), or with the --control-style images,
styles the victim never trains on; they are stored under OUT/controls/ and listed in the key.
Verification contrasts a suspect's answer to the owner's style with its answer to the control
styles on the same images (see move help verify). --add-controls KEY adds them to a key made
without them.

EXIT STATUS
  0 on success (and, with --check, when both checks pass), 1 when a check fails, 2 on error.`,
		run: runEmbedCmd,
	}
}

func runEmbedCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opt := style.Default()
	fs := newFlags("embed", stderr)
	src := fs.String("data", "", "clean image folder (root with train/ and test/, or class folders)")
	styleImg := fs.String("style", "", "style image (PNG or JPEG)")
	out := fs.String("out", "", "output folder")
	rate := fs.Float64("rate", 0.1, "fraction of each class to style, in (0, 1]")
	seed := fs.Uint64("seed", 0, "random seed (which samples are styled)")
	fs.Uint64Var(&opt.Seed, "style-seed", opt.Seed, "seed of the random feature network")
	fs.IntVar(&opt.Steps, "steps", opt.Steps, "optimisation steps per image")
	fs.Float64Var(&opt.Strength, "strength", opt.Strength, "style weight relative to content weight")
	fs.Float64Var(&opt.LR, "style-lr", opt.LR, "optimisation step size (pixel units)")
	fs.IntVar(&opt.Upscale, "upscale", opt.Upscale, "style at UPSCALE times the image size, then shrink back")
	fs.IntVar(&opt.StyleSize, "style-size", opt.StyleSize, "side of the style image in the feature network")
	fs.BoolVar(&opt.Median, "median", opt.Median, "apply a 3x3 median filter to styled images")
	fs.BoolVar(&opt.KeepColors, "keep-colors", opt.KeepColors, "keep hue and saturation of the originals")
	fs.StringVar(&opt.Method, "method", opt.Method, "style statistic matched: gram (Gram matrices) or stats (channel mean and deviation, as AdaIN)")
	force := fs.Bool("force", false, "replace OUT if it exists")
	preview := fs.String("preview", "", "write a contact sheet of originals and styled images to this PNG")
	check := fs.Bool("check", false, "run the style-distance and content checks")
	checkModel := fs.String("check-model", "", "classifier trained on clean data, for the content check")
	checkN := fs.Int("check-images", 500, "test images for the content check")
	jsonOut := fs.Bool("json", false, "print the result as JSON on stdout")
	nControls := fs.Int("controls", 2, "procedural control styles to style part of the key with (0: none; see move help verify)")
	var controlStyles listFlag
	fs.Var(&controlStyles, "control-style", "control style image instead of the procedural ones (repeatable; never the owner's style)")
	controlSamples := fs.Int("control-samples", 1000, "key samples that get control versions (0: all)")
	addControls := fs.String("add-controls", "", "add control styles to this existing key (key.json) and exit")
	applyONNX := onnxFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := applyONNX(); err != nil {
		return err
	}
	if *addControls == "" {
		if err := need(fs, "data", "style", "out"); err != nil {
			return err
		}
	}
	if *preview != "" {
		if _, err := os.Stat(*preview); err == nil && !*force {
			return fmt.Errorf("%s: already exists (pass --force to overwrite)", *preview)
		}
	}
	cmdline := strings.Join(append([]string{"move", "embed"}, args...), " ")
	pr := newProgress(stderr)
	start := time.Now()
	co := watermark.ControlOptions{Styles: controlStyles, Count: *nControls, Samples: *controlSamples, Seed: *seed, Style: opt, Force: *force,
		Progress: func(done, total int, el time.Duration) {
			rate := float64(done) / el.Seconds()
			pr.printf(done == total, "control styles: %d/%d images, %.1f img/s, ETA %s", done, total, rate,
				fmtDuration(time.Duration(float64(total-done)/rate*float64(time.Second))))
		}}
	if *addControls != "" {
		k, err := watermark.AddControls(ctx, *addControls, co)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "added %d control styles to %d samples of %s\n", len(k.Controls), len(k.Controls[0].Samples), *addControls)
		return nil
	}
	key, err := watermark.Embed(ctx, watermark.Options{Data: *src, StyleImage: *styleImg, Out: *out, Rate: *rate, Seed: *seed,
		Style: opt, Force: *force, Command: cmdline,
		Progress: func(done, total int, el time.Duration) {
			rate := float64(done) / el.Seconds()
			pr.printf(done == total, "styling %d/%d images, %.1f img/s, ETA %s", done, total, rate,
				fmtDuration(time.Duration(float64(total-done)/rate*float64(time.Second))))
		}})
	if err != nil {
		return err
	}
	if *nControls > 0 || len(controlStyles) > 0 {
		co.Force = true // the key was just written
		if key, err = watermark.AddControls(ctx, filepath.Join(*out, "key.json"), co); err != nil {
			return fmt.Errorf("control styles: %w", err)
		}
	}
	elapsed := time.Since(start)
	result := map[string]any{"out": *out, "key": filepath.Join(*out, "key.json"), "styled": len(key.Samples),
		"seconds": elapsed.Seconds(), "seed": *seed, "command": cmdline, "version": key.Version}
	fmt.Fprintf(stderr, "styled %d images in %s (%.2f s/image) -> %s\n", len(key.Samples), fmtDuration(elapsed),
		elapsed.Seconds()/float64(max(1, len(key.Samples))), *out)
	if *preview != "" {
		pairs, err := watermark.LoadPairs(key, 24)
		if err != nil {
			return err
		}
		pix, h, w := watermark.ContactSheet(pairs, 4, max(1, 128/max(1, pairs[0].H)))
		if err := data.WritePNG(*preview, pix, h, w, *force); err != nil {
			return err
		}
		result["preview"] = *preview
	}
	failed := false
	if *check {
		pairs, err := watermark.LoadPairs(key, 64)
		if err != nil {
			return err
		}
		spix, sh, sw, err := data.ReadImage(*styleImg, 0)
		if err != nil {
			return err
		}
		sc, err := watermark.CheckStyle(pairs, spix, sh, sw, opt)
		if err != nil {
			return err
		}
		result["style_check"] = sc
		fmt.Fprintf(stdout, "check (a) style distance: %.4f -> %.4f (ratio %.3f, need <= 0.5): %s\n", sc.Before, sc.After, sc.Ratio, passFail(sc.Pass))
		failed = failed || !sc.Pass
		if *checkModel != "" {
			cc, err := contentCheck(*checkModel, *src, *styleImg, opt, *checkN, *seed)
			if err != nil {
				return err
			}
			result["content_check"] = cc
			fmt.Fprintf(stdout, "check (b) content: accuracy %.2f%% clean, %.2f%% styled (kept %.1f%%, need >= 50%%): %s\n",
				100*cc.Clean, 100*cc.Styled, 100*cc.Kept, passFail(cc.Pass))
			failed = failed || !cc.Pass
		} else {
			fmt.Fprintln(stdout, "check (b) content: skipped (give --check-model, a classifier trained on clean data)")
		}
	}
	if *jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(result); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "embedded: %d of the training images styled with %s (rate %g, seed %d) -> %s, key %s\n",
			len(key.Samples), *styleImg, *rate, *seed, *out, filepath.Join(*out, "key.json"))
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

type contentResult struct {
	Images int     `json:"images"`
	Clean  float64 `json:"clean_accuracy"`
	Styled float64 `json:"styled_accuracy"`
	Kept   float64 `json:"kept"`
	Pass   bool    `json:"pass"`
}

// contentCheck styles test images and compares a clean classifier's accuracy on them.
func contentCheck(modelPath, src, styleImg string, opt style.Options, n int, seed uint64) (contentResult, error) {
	var r contentResult
	m, info, err := modelfile.Load(modelPath)
	if err != nil {
		return r, err
	}
	test, err := data.Open(src, "test", data.FolderOptions{Size: info.InputSize})
	if errors.Is(err, os.ErrNotExist) {
		return r, fmt.Errorf("content check: %s has no test split", src)
	}
	if err != nil {
		return r, err
	}
	idx, _ := data.Split(test.Len(), min(n, test.Len()), seed)
	sub := test.Subset(idx)
	spix, sh, sw, err := data.ReadImage(styleImg, 0)
	if err != nil {
		return r, err
	}
	tr, err := style.New(spix, sh, sw, opt)
	if err != nil {
		return r, err
	}
	imgs := make([][]uint8, sub.Len())
	for i := range imgs {
		imgs[i] = sub.Image(i)
	}
	styled := tr.Apply(imgs, sub.H, sub.W)
	ss := &data.Set{Classes: sub.Classes, H: sub.H, W: sub.W, Labels: sub.Labels}
	for _, p := range styled {
		ss.Pixels = append(ss.Pixels, p...)
	}
	r.Images = sub.Len()
	r.Clean = train.Accuracy(m, sub, info.Norm, 256)
	r.Styled = train.Accuracy(m, ss, info.Norm, 256)
	r.Kept = r.Styled / r.Clean
	r.Pass = r.Kept >= 0.5
	return r, nil
}

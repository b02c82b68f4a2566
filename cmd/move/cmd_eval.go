package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"move/internal/data"
	"move/internal/modelfile"
	"move/internal/train"
)

func init() {
	commands["eval"] = &command{
		summary: "measure a model's accuracy on a data set",
		usage:   "--model FILE --data DIR [--split test] [--json]",
		help: `Evaluates a model file (trained, or produced by an attack) on one split of a data set
and prints its top-1 accuracy. Images are resized to the model's input size when they differ.

EXIT STATUS
  0 on success, 2 on error.`,
		run: func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			fs := newFlags("eval", stderr)
			applyONNX := onnxFlags(fs)
			model := fs.String("model", "", "model file")
			src := fs.String("data", "", "data set: image folder root, CIFAR-10 binary dir, or synthetic[:N]")
			split := fs.String("split", "test", "split to evaluate: train or test")
			limit := fs.Int("limit", 0, "at most this many images per class (0: all)")
			jsonOut := fs.Bool("json", false, "print JSON on stdout")
			if err := parse(fs, args); err != nil {
				return err
			}
			if err := applyONNX(); err != nil {
				return err
			}
			if err := need(fs, "model", "data"); err != nil {
				return err
			}
			m, info, err := modelfile.Load(*model)
			if err != nil {
				return err
			}
			set, err := data.Open(*src, *split, data.FolderOptions{Size: info.InputSize, PerClass: *limit})
			if err != nil {
				return err
			}
			if len(set.Classes) != m.Classes() {
				return fmt.Errorf("%s has %d classes, the model %d", *src, len(set.Classes), m.Classes())
			}
			acc := train.Accuracy(m, set, info.Norm, 256)
			if *jsonOut {
				return json.NewEncoder(stdout).Encode(map[string]any{"model": *model, "arch": info.Arch, "data": *src, "split": *split, "images": set.Len(), "accuracy": acc})
			}
			fmt.Fprintf(stdout, "%s (%s) on %s/%s: accuracy %.2f%% over %d images\n", *model, info.Arch, *src, *split, 100*acc, set.Len())
			return nil
		},
	}
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"move/internal/classifier"
	"move/internal/data"
	"move/internal/modelfile"
	"move/internal/train"
)

// evalReport is move eval's JSON output.
type evalReport struct {
	Model    string  `json:"model"`
	Arch     string  `json:"arch"`
	Data     string  `json:"data"`
	Split    string  `json:"split"`
	Images   int     `json:"images"`
	Accuracy float64 `json:"accuracy"`
}

func init() {
	commands["eval"] = &command{
		summary: "measure a model's accuracy on a data set",
		usage:   "--model FILE --data DIR [--split test] [--json]",
		help: `Evaluates a model file (trained, or produced by an attack) on one split of a data set
and prints its top-1 accuracy. Images are resized to the model's input size when they differ.

EXIT STATUS
  0 on success, 2 on error, 3 on an internal error (a bug).`,
		run: func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			var o evalOptions
			fs := newFlags("eval", stderr)
			onnxOpts := onnxFlags(fs)
			fs.StringVar(&o.model, "model", "", "model file")
			fs.StringVar(&o.data, "data", "", "data set: image folder root, CIFAR-10 binary dir, or synthetic[:N]")
			enumIn(fs, &o.split, "split", "test", []string{"train", "test"}, "split to evaluate")
			intIn(fs, &o.limit, "limit", 0, 0, 1<<24, "at most this many images per class (0: all)")
			fs.BoolVar(&o.jsonOut, "json", false, "print JSON on stdout")
			if err := parse(fs, args); err != nil {
				return err
			}
			var err error
			if o.onnx, err = onnxOpts(); err != nil {
				return err
			}
			if err := need(fs, "model", "data"); err != nil {
				return err
			}
			return runEval(o, stdout)
		},
	}
}

// evalOptions are move eval's flags.
type evalOptions struct {
	model, data, split string
	limit              int
	jsonOut            bool
	onnx               modelfile.ONNXDefaults
}

func runEval(o evalOptions, stdout io.Writer) error {
	c, info, err := classifier.Load(o.model, o.onnx)
	if err != nil {
		return err
	}
	set, err := data.Open(o.data, o.split, data.FolderOptions{Size: info.InputSize, PerClass: o.limit})
	if err != nil {
		return err
	}
	if err := info.MatchClasses(set.Classes, o.data); err != nil {
		return fmt.Errorf("%s: %w", o.model, err)
	}
	acc := train.ArgmaxAgreement(c.Logits(set), set.Labels)
	if o.jsonOut {
		return json.NewEncoder(stdout).Encode(evalReport{Model: o.model, Arch: info.Arch, Data: o.data, Split: o.split, Images: set.Len(), Accuracy: acc})
	}
	fmt.Fprintf(stdout, "%s (%s) on %s/%s: accuracy %.2f%% over %d images\n", o.model, info.Arch, o.data, o.split, 100*acc, set.Len())
	return nil
}

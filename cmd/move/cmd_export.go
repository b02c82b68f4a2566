package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"move/internal/modelfile"
)

// exportOptions are move export's flags.
type exportOptions struct {
	model, out  string
	fold, force bool
	onnx        modelfile.ONNXDefaults
	command     string
}

func init() {
	commands["export"] = &command{
		summary: "write a model as ONNX",
		usage:   "--model FILE --out MODEL.onnx [--fold] [flags]",
		help: `Writes a model file as ONNX (opset 13, NCHW float input "input" with a symbolic batch size,
output "logits"), with the model's metadata (classes, normalisation, input size, how it was
made) under the metadata key "move", so that every move command reads it back as it was.
Every built-in architecture exports; an imported ONNX file is written back with its current
weights.

--fold merges each batch norm that follows a convolution into the convolution's weights and
bias, as PyTorch's exporter does by default; the logits do not change. White-box verification
reads gradients in this folded form for every model, so a folded and an unfolded export get
the same verdict.

The export is checked before it is written: the file is imported again and its logits on
random images compared with the model's.

EXIT STATUS
  0 on success, 2 on error, 3 on an internal error (a bug).`,
		run: func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			var o exportOptions
			fs := newFlags("export", stderr)
			fs.StringVar(&o.model, "model", "", "model file (.safetensors or .onnx)")
			fs.StringVar(&o.out, "out", "", "ONNX file to write")
			fs.BoolVar(&o.fold, "fold", false, "merge batch norms into the convolutions before them")
			fs.BoolVar(&o.force, "force", false, "overwrite --out")
			onnxOpts := onnxFlags(fs)
			if err := parse(fs, args); err != nil {
				return err
			}
			if err := need(fs, "model", "out"); err != nil {
				return err
			}
			var err error
			if o.onnx, err = onnxOpts(); err != nil {
				return err
			}
			o.command = strings.Join(append([]string{"move", "export"}, args...), " ")
			return runExport(o, stdout)
		},
	}
}

func runExport(o exportOptions, stdout io.Writer) error {
	if !modelfile.IsONNX(o.out) {
		return fmt.Errorf("--out %s: the file name must end in .onnx", o.out)
	}
	m, info, err := modelfile.Load(o.model, o.onnx)
	if err != nil {
		return err
	}
	info.Command = o.command
	e, err := modelfile.Export(o.out, m, info, o.force, o.fold)
	if err != nil {
		return fmt.Errorf("%s: %w", o.model, err)
	}
	folded := ""
	if o.fold {
		folded = ", batch norms folded"
	}
	fmt.Fprintf(stdout, "wrote %s: %s, %d classes, %dx%d input, %d weights%s; logits of the re-imported file within %.2g of the model's\n",
		o.out, m.Arch(), m.Classes(), info.InputSize, info.InputSize, e.Params, folded, e.MaxDiff)
	return nil
}

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"

	"move/internal/data"
	"move/internal/modelfile"
	"move/internal/models"
	"move/internal/nn"
	"move/internal/onnx"
	"move/internal/tensor"
)

// onnxFlags adds the flags that describe ONNX files without move metadata to fs; the function
// it returns applies them (call it after parsing).
func onnxFlags(fs *flag.FlagSet) func() error {
	size := fs.Int("onnx-size", 0, "ONNX files without move metadata: image size, when the graph's is symbolic")
	mean := fs.String("onnx-mean", "", "ONNX files without move metadata: per-channel mean of the input normalisation (r,g,b in [0,1])")
	std := fs.String("onnx-std", "", "ONNX files without move metadata: per-channel standard deviation of the input normalisation")
	classes := fs.String("onnx-classes", "", "ONNX files without move metadata: class names, comma-separated (default 0..K-1)")
	return func() error {
		d := modelfile.ONNXDefaults{InputSize: *size}
		if (*mean == "") != (*std == "") {
			return fmt.Errorf("--onnx-mean and --onnx-std go together")
		}
		if *mean != "" {
			var n data.Normalization
			for name, dst := range map[string]*[3]float32{*mean: &n.Mean, *std: &n.Std} {
				parts := strings.Split(name, ",")
				if len(parts) != 3 {
					return fmt.Errorf("--onnx-mean/--onnx-std: %q is not three comma-separated numbers", name)
				}
				for k, p := range parts {
					v, err := strconv.ParseFloat(strings.TrimSpace(p), 32)
					if err != nil {
						return fmt.Errorf("--onnx-mean/--onnx-std: %q is not a number", p)
					}
					dst[k] = float32(v)
				}
			}
			d.Norm = &n
		}
		if *classes != "" {
			d.Classes = strings.Split(*classes, ",")
		}
		modelfile.Defaults = d
		return nil
	}
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
  0 on success, 2 on error.`,
		run: func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			fs := newFlags("export", stderr)
			model := fs.String("model", "", "model file (.safetensors or .onnx)")
			out := fs.String("out", "", "ONNX file to write")
			fold := fs.Bool("fold", false, "merge batch norms into the convolutions before them")
			force := fs.Bool("force", false, "overwrite --out")
			applyONNX := onnxFlags(fs)
			if err := parse(fs, args); err != nil {
				return err
			}
			if err := need(fs, "model", "out"); err != nil {
				return err
			}
			if err := applyONNX(); err != nil {
				return err
			}
			if !modelfile.IsONNX(*out) {
				return fmt.Errorf("--out %s: the file name must end in .onnx", *out)
			}
			m, info, err := modelfile.Load(*model)
			if err != nil {
				return err
			}
			info.Command = strings.Join(append([]string{"move", "export"}, args...), " ")
			// Check the export before writing it: the same logits after a round trip.
			b, err := onnx.Export(m, info.InputSize, nil, onnx.ExportOptions{Fold: *fold})
			if err != nil {
				return fmt.Errorf("exporting %s: %w", *model, err)
			}
			back, err := onnx.Import(b, "", onnx.Options{})
			if err != nil {
				return fmt.Errorf("the export of %s does not read back: %w", *model, err)
			}
			diff := maxLogitDiff(m, back, info.InputSize)
			if diff > 1e-3 {
				return fmt.Errorf("the export of %s gives other logits (off by %.3g of the largest)", *model, diff)
			}
			if err := modelfile.Export(*out, m, info, *force, *fold); err != nil {
				return err
			}
			folded := ""
			if *fold {
				folded = ", batch norms folded"
			}
			fmt.Fprintf(stdout, "wrote %s: %s, %d classes, %dx%d input, %d weights%s; logits of the re-imported file within %.2g of the model's\n",
				*out, m.Arch(), m.Classes(), info.InputSize, info.InputSize, back.Store().NumParams(), folded, diff)
			return nil
		},
	}
}

// maxLogitDiff runs a and b on four random images and returns the largest logit
// difference relative to the largest logit.
func maxLogitDiff(a, b models.Model, size int) float64 {
	r := rand.New(rand.NewPCG(1, 1))
	x := tensor.New(4, size, size, 3)
	for i := range x.Data {
		x.Data[i] = float32(r.NormFloat64())
	}
	ya := a.Forward(nil, nn.Const(x), false).Value.Data
	yb := b.Forward(nil, nn.Const(x), false).Value.Data
	big, worst := 0.0, 0.0
	for i := range ya {
		big = math.Max(big, math.Abs(float64(ya[i])))
		worst = math.Max(worst, math.Abs(float64(ya[i]-yb[i])))
	}
	return worst / (big + 1e-12)
}

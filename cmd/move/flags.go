package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"move/internal/data"
	"move/internal/modelfile"
)

// newFlags makes a flag set for a command whose -h prints its help.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		c := commands[name]
		fmt.Fprintf(stderr, "Usage: move %s %s\n\n%s\n\nFlags:\n", name, c.usage, strings.TrimSpace(c.help))
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags and rejects stray arguments.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "move %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return errUsage
	}
	return nil
}

// need reports a missing required flag.
func need(fs *flag.FlagSet, flags ...string) error {
	for _, f := range flags {
		if v := fs.Lookup(f); v != nil && v.Value.String() == "" {
			fmt.Fprintf(fs.Output(), "move %s: --%s is required\n", fs.Name(), f)
			return errUsage
		}
	}
	return nil
}

// listFlag is a flag that may be given several times.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// onnxFlags adds the flags that describe ONNX files without move metadata to fs; the function
// it returns reads them (call it after parsing) for the model loaders.
func onnxFlags(fs *flag.FlagSet) func() (modelfile.ONNXDefaults, error) {
	size := fs.Int("onnx-size", 0, "ONNX files without move metadata: image size, when the graph's is symbolic")
	mean := fs.String("onnx-mean", "", "ONNX files without move metadata: per-channel mean of the input normalisation (r,g,b in [0,1])")
	std := fs.String("onnx-std", "", "ONNX files without move metadata: per-channel standard deviation of the input normalisation")
	classes := fs.String("onnx-classes", "", "ONNX files without move metadata: class names, comma-separated (default 0..K-1)")
	return func() (modelfile.ONNXDefaults, error) {
		d := modelfile.ONNXDefaults{InputSize: *size}
		if (*mean == "") != (*std == "") {
			return d, fmt.Errorf("--onnx-mean and --onnx-std go together")
		}
		if *mean != "" {
			var n data.Normalization
			for name, dst := range map[string]*[3]float32{*mean: &n.Mean, *std: &n.Std} {
				parts := strings.Split(name, ",")
				if len(parts) != 3 {
					return d, fmt.Errorf("--onnx-mean/--onnx-std: %q is not three comma-separated numbers", name)
				}
				for k, p := range parts {
					v, err := strconv.ParseFloat(strings.TrimSpace(p), 32)
					if err != nil {
						return d, fmt.Errorf("--onnx-mean/--onnx-std: %q is not a number", p)
					}
					dst[k] = float32(v)
				}
			}
			d.Norm = &n
		}
		if *classes != "" {
			d.Classes = strings.Split(*classes, ",")
		}
		return d, nil
	}
}

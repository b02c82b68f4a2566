package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"move/internal/data"
	"move/internal/modelfile"
)

// newFlags makes a flag set for a command whose -h prints its help.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {} // parse prints the help for -h, and one line for a bad flag
	return fs
}

// printHelp writes a command's help and flags.
func printHelp(fs *flag.FlagSet) {
	c := commands[fs.Name()]
	fmt.Fprintf(fs.Output(), "Usage: move %s %s\n\n%s\n\nFlags:\n", fs.Name(), c.usage, strings.TrimSpace(c.help))
	fs.PrintDefaults()
}

// parse parses flags and rejects stray arguments. A bad flag value is reported in one line
// (the flag package's, with the rule it broke), not with the whole help.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printHelp(fs)
			return err
		}
		fmt.Fprintf(fs.Output(), "Run 'move help %s' for its flags.\n", fs.Name())
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
	size := new(int)
	intIn(fs, size, "onnx-size", 0, 0, 1024, "ONNX files without move metadata: image size, when the graph's is symbolic")
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

// interval is the range a numeric flag accepts; an open end excludes its bound.
type interval struct {
	lo, hi         float64
	loOpen, hiOpen bool
}

func closed(lo, hi float64) interval     { return interval{lo: lo, hi: hi} }
func openClosed(lo, hi float64) interval { return interval{lo: lo, hi: hi, loOpen: true} }
func open(lo, hi float64) interval       { return interval{lo: lo, hi: hi, loOpen: true, hiOpen: true} }

func (r interval) contains(v float64) bool {
	if math.IsNaN(v) {
		return false
	}
	if v < r.lo || (r.loOpen && v == r.lo) || v > r.hi || (r.hiOpen && v == r.hi) {
		return false
	}
	return true
}

func (r interval) String() string {
	l, h := "[", "]"
	if r.loOpen {
		l = "("
	}
	if r.hiOpen {
		h = ")"
	}
	num := func(v float64) string {
		if math.IsInf(v, 0) {
			return map[bool]string{true: "inf", false: "-inf"}[v > 0]
		}
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	return l + num(r.lo) + ", " + num(r.hi) + h
}

// floatValue is a float flag that refuses values outside its interval.
type floatValue struct {
	p *float64
	r interval
}

func (f *floatValue) String() string {
	if f.p == nil {
		return ""
	}
	return strconv.FormatFloat(*f.p, 'g', -1, 64)
}

func (f *floatValue) Set(s string) error {
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return fmt.Errorf("%q is not a number", s)
	}
	if !f.r.contains(v) {
		return fmt.Errorf("%s is outside %s", s, f.r)
	}
	*f.p = v
	return nil
}

// floatIn defines a float flag with default def that accepts values in r only.
func floatIn(fs *flag.FlagSet, p *float64, name string, def float64, r interval, usage string) {
	*p = def
	fs.Var(&floatValue{p, r}, name, usage+" (in "+r.String()+")")
}

// intValue is an integer flag that refuses values outside [lo, hi].
type intValue struct {
	p      *int
	lo, hi int
}

func (f *intValue) String() string {
	if f.p == nil {
		return ""
	}
	return strconv.Itoa(*f.p)
}

func (f *intValue) Set(s string) error {
	v, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%q is not an integer", s)
	}
	if v < f.lo || v > f.hi {
		return fmt.Errorf("%d is outside [%d, %d]", v, f.lo, f.hi)
	}
	*f.p = v
	return nil
}

// intIn defines an integer flag with default def that accepts values in [lo, hi] only.
func intIn(fs *flag.FlagSet, p *int, name string, def, lo, hi int, usage string) {
	*p = def
	fs.Var(&intValue{p, lo, hi}, name, fmt.Sprintf("%s (in [%d, %d])", usage, lo, hi))
}

// enumValue is a string flag that accepts one of a fixed set of words.
type enumValue struct {
	p     *string
	words []string
}

func (e *enumValue) String() string {
	if e.p == nil {
		return ""
	}
	return *e.p
}

func (e *enumValue) Set(s string) error {
	if !slices.Contains(e.words, s) {
		return fmt.Errorf("%q is not one of %s", s, strings.Join(e.words, ", "))
	}
	*e.p = s
	return nil
}

// enumIn defines a string flag with default def that accepts one of words (def may be "" for
// a required flag).
func enumIn(fs *flag.FlagSet, p *string, name, def string, words []string, usage string) {
	*p = def
	fs.Var(&enumValue{p, words}, name, usage+" ("+strings.Join(words, " or ")+")")
}

// positiveDuration defines a duration flag that must be positive.
type durationValue struct{ p *time.Duration }

func (d *durationValue) String() string {
	if d.p == nil {
		return ""
	}
	return d.p.String()
}

func (d *durationValue) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration (e.g. 30s, 2m)", s)
	}
	if v <= 0 {
		return fmt.Errorf("%s is not positive", s)
	}
	*d.p = v
	return nil
}

// durationIn defines a duration flag with default def that must be positive.
func durationIn(fs *flag.FlagSet, p *time.Duration, name string, def time.Duration, usage string) {
	*p = def
	fs.Var(&durationValue{p}, name, usage)
}

// Command move proves that a suspect image classifier was stolen from yours, by ownership
// verification via embedded external features (MOVE). Run `move help` for the commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"sort"
	"strings"
	"syscall"

	"move/internal/atomicfile"
	"move/internal/buildinfo"
	"move/internal/modelfile"
	"move/internal/onnx"
	"move/internal/steal"
	"move/internal/verify"
)

// Exit codes, shared by every command. Commands that give a verdict exit 0 for a positive
// verdict ("stolen") and 1 for a negative one.
const (
	exitOK       = 0
	exitNegative = 1
	exitError    = 2 // bad input, a failed step, an interrupt
	exitPanic    = 3 // a bug in move: a panic, reported with its stack
)

// command is one subcommand.
type command struct {
	summary string
	usage   string // flags synopsis
	help    string // long help, ending with EXIT STATUS
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = map[string]*command{}

// errUsage marks a usage mistake (already explained on stderr).
var errUsage = errors.New("usage")

// negative is returned by commands whose answer is "no" (exit status 1) without an error.
type negative struct{ msg string }

func (n negative) Error() string { return n.msg }

func main() { os.Exit(runWithSignals(os.Args[1:])) }

// runWithSignals runs a command line on the process's streams; an interrupt or SIGTERM
// cancels it (serve then stops gracefully).
func runWithSignals(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, args, os.Stdout, os.Stderr)
}

// run executes a command line and maps its error to an exit status, printing one line (with
// advice when a flag fixes it). A panic is a bug: it is reported with its stack and exits
// with its own status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) (code int) {
	defer func() {
		if p := recover(); p != nil {
			fmt.Fprintf(stderr, "move: internal error (a bug in move %s; please report it with this message): %v\n%s", buildinfo.Version, p, debug.Stack())
			code = exitPanic
		}
	}()
	if len(args) == 0 {
		usage(stderr)
		return exitError
	}
	name := args[0]
	if name == "-h" || name == "--help" {
		name = "help"
	}
	c, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "move: unknown command %q\nRun 'move help' for the list of commands.\n", name)
		return exitError
	}
	err := c.run(ctx, args[1:], stdout, stderr)
	var neg negative
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &neg):
		return exitNegative
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, errUsage):
		return exitError
	case errors.Is(err, context.Canceled):
		if msg := err.Error(); msg != context.Canceled.Error() {
			fmt.Fprintf(stderr, "move: interrupted (%s)\n", msg)
		} else {
			fmt.Fprintln(stderr, "move: interrupted")
		}
		return exitError
	default:
		fmt.Fprintf(stderr, "move: %s\n", strings.TrimSpace(err.Error()))
		if a := advise(err); a != "" {
			fmt.Fprintf(stderr, "move: %s\n", a)
		}
		return exitError
	}
}

// advice is what the CLI adds to an error from below that one of its flags fixes: the
// packages under internal/ return typed errors and do not know the flags.
var advice = []struct {
	err  error
	text string
}{
	{atomicfile.ErrExists, "pass --force to overwrite it"},
	{modelfile.ErrNoNormalization, "give the normalisation its inputs expect with --onnx-mean and --onnx-std " +
		"(ImageNet's: --onnx-mean 0.485,0.456,0.406 --onnx-std 0.229,0.224,0.225; a graph that normalises itself: 0,0,0 and 1,1,1)"},
	{onnx.ErrSymbolicSize, "give the image size with --onnx-size"},
	{steal.ErrArchUnknown, "give the stolen model's architecture with --arch"},
	{steal.ErrArchNotBuildable, "give the stolen model's architecture with --arch"},
	{verify.ErrArchMismatch, "verify black-box instead (move meta --mode black), or train a victim and a benign copy in the suspect's architecture (move train) and a white-box meta-classifier on them"},
}

// advise returns the advice for err ("" when there is none).
func advise(err error) string {
	for _, a := range advice {
		if errors.Is(err, a.err) {
			return a.text
		}
	}
	return ""
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "move: ownership verification of image classifiers via embedded external features")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: move <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	var names []string
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'move help <command>' for a command's flags.")
}

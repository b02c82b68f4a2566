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
	"sort"
	"strings"
)

// Exit codes, shared by every command. Commands that give a verdict exit 0 for a positive
// verdict ("stolen") and 1 for a negative one.
const (
	exitOK       = 0
	exitNegative = 1
	exitError    = 2
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

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run executes a command line and maps its error to an exit status, printing one line.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
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
		fmt.Fprintln(stderr, "move: interrupted")
		return exitError
	default:
		fmt.Fprintf(stderr, "move: %s\n", strings.TrimSpace(err.Error()))
		return exitError
	}
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

func init() {
	commands["help"] = &command{
		summary: "show help for move or one command",
		usage:   "[command]",
		help:    "Prints the list of commands, or one command's help.\n\nEXIT STATUS\n  0 on success, 2 for an unknown command.",
		run: func(_ context.Context, args []string, stdout, stderr io.Writer) error {
			if len(args) == 0 {
				usage(stdout)
				return nil
			}
			c, ok := commands[args[0]]
			if !ok {
				return fmt.Errorf("unknown command %q", args[0])
			}
			if err := c.run(context.Background(), []string{"-h"}, stdout, stdout); !errors.Is(err, flag.ErrHelp) {
				return err
			}
			return nil
		},
	}
}

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"

	"move/internal/atomicfile"
	"move/internal/modelfile"
	"move/internal/onnx"
	"move/internal/parallel"
	"move/internal/steal"
)

// withCommand runs a command line with an extra command registered for the test.
func withCommand(t *testing.T, fn func(ctx context.Context, args []string, stdout, stderr io.Writer) error) (int, string) {
	t.Helper()
	commands["test-cmd"] = &command{summary: "test", run: fn}
	defer delete(commands, "test-cmd")
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"test-cmd"}, &out, &errb)
	return code, errb.String()
}

// A panic is a bug: its own exit status and a report with the stack, also from a worker
// goroutine of the engine.
func TestPanicExitStatus(t *testing.T) {
	code, msg := withCommand(t, func(context.Context, []string, io.Writer, io.Writer) error { panic("boom") })
	if code != exitPanic || !strings.Contains(msg, "internal error") || !strings.Contains(msg, "boom") || !strings.Contains(msg, "goroutine") {
		t.Fatalf("a panic: exit %d, %q", code, msg)
	}
	code, msg = withCommand(t, func(context.Context, []string, io.Writer, io.Writer) error {
		parallel.For(8, func(lo, hi, w int) {
			if w == parallel.Workers()-1 {
				panic("worker boom")
			}
		})
		return nil
	})
	if code != exitPanic || !strings.Contains(msg, "worker boom") {
		t.Fatalf("a panic in the engine's workers: exit %d, %q", code, msg)
	}
}

// Errors from below that a flag fixes get the flag's advice from the CLI; others get none.
func TestAdvice(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("m.onnx carries no move metadata: %w", modelfile.ErrNoNormalization), "--onnx-mean and --onnx-std"},
		{fmt.Errorf("reading model: %w", onnx.ErrSymbolicSize), "--onnx-size"},
		{fmt.Errorf("x: %w", steal.ErrArchNotBuildable), "--arch"},
		{fmt.Errorf("out.safetensors: %w", atomicfile.ErrExists), "--force"},
	} {
		code, msg := withCommand(t, func(context.Context, []string, io.Writer, io.Writer) error { return c.err })
		if code != exitError || !strings.Contains(msg, c.err.Error()) || !strings.Contains(msg, c.want) {
			t.Errorf("%v: exit %d, %q, want advice naming %s", c.err, code, msg, c.want)
		}
	}
	code, msg := withCommand(t, func(context.Context, []string, io.Writer, io.Writer) error { return fmt.Errorf("plain failure") })
	if code != exitError || strings.Count(msg, "\n") != 1 {
		t.Errorf("a plain error: exit %d, %q", code, msg)
	}
}

// A meta-classifier at chance level is written but answered with exit status 1 and a warning
// (issue 16, item 9).
func TestChanceLevel(t *testing.T) {
	var b bytes.Buffer
	for _, acc := range []float64{0.5, 0.59, math.NaN()} {
		b.Reset()
		var neg negative
		if err := chanceLevel(acc, &b); !errors.As(err, &neg) || !strings.Contains(b.String(), "no better than chance") {
			t.Errorf("held-out accuracy %g: %v, %q", acc, err, b.String())
		}
	}
	b.Reset()
	if err := chanceLevel(0.9, &b); err != nil || b.Len() != 0 {
		t.Errorf("held-out accuracy 0.9: %v, %q", err, b.String())
	}
}

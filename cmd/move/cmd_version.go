package main

import (
	"context"
	"fmt"
	"io"

	"move/internal/buildinfo"
	"move/internal/kernels"
)

func init() {
	commands["version"] = &command{
		summary: "print the version",
		help:    "Prints move's version, the Go toolchain and the GEMM kernel selected for this CPU.\n\nEXIT STATUS\n  0 on success.",
		run: func(_ context.Context, args []string, stdout, stderr io.Writer) error {
			fs := newFlags("version", stderr)
			if err := parse(fs, args); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s kernel %s\n", buildinfo.String(), kernels.Kernel())
			return nil
		},
	}
}

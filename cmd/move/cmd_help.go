package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
)

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

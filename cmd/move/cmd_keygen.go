package main

import (
	"context"
	"fmt"
	"io"

	"move/internal/record"
)

func init() {
	commands["keygen"] = &command{
		summary: "make an Ed25519 key pair for signing registration records",
		usage:   "--out NAME [--force]",
		help: `Writes NAME.key (the private key, PKCS #8 PEM, readable by the owner only) and NAME.pub
(the public key, PKIX PEM): the formats openssl reads. Give the public key to anyone who
must check your registration records; keep the private key.

EXIT STATUS
  0 on success, 2 on error, 3 on an internal error (a bug).`,
		run: func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			fs := newFlags("keygen", stderr)
			out := fs.String("out", "", "path prefix of the key files (NAME.key, NAME.pub)")
			force := fs.Bool("force", false, "overwrite existing key files")
			if err := parse(fs, args); err != nil {
				return err
			}
			if err := need(fs, "out"); err != nil {
				return err
			}
			if err := record.GenerateKey(*out+".key", *out+".pub", *force); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "wrote %s.key (private) and %s.pub (public)\n", *out, *out)
			return nil
		},
	}
}

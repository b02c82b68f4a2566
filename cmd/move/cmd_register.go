package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"move/internal/buildinfo"
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
  0 on success, 2 on error.`,
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
	commands["register"] = &command{
		summary: "sign a registration record of the victim, key and meta-classifiers",
		usage:   "--victim V --key KEY --meta META [--meta META2] --signing-key NAME.key --out REC [--owner TEXT]",
		help: `Writes a small signed record of exactly what the owner holds: the SHA-256 of the victim
model, of the key file and of every image it refers to (originals, transformed images,
control images, style images), of each meta-classifier, the move version and the time,
signed with Ed25519. Its digest (printed, and stored in the record) is what to hand to an
external timestamping service (RFC 3161, OpenTimestamps, a notary): a record that provably
existed before the suspect did defeats the false claims that statistics cannot (a claimant
who builds a "victim" from an innocent public model after the fact, or who tries many style
images until one flags the target). Relative paths are stored as given; keep the record
beside the files it names (move verify --record resolves them from the record's folder).

A third party needs only the public key and the files: the record's "payload" is the signed
bytes (base64), "signature" the Ed25519 signature over them; each file's SHA-256 is listed
in the payload.

EXIT STATUS
  0 on success, 2 on error.`,
		run: func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			fs := newFlags("register", stderr)
			victim := fs.String("victim", "", "the victim model file")
			key := fs.String("key", "", "the watermark key (key.json)")
			var metas listFlag
			fs.Var(&metas, "meta", "a meta-classifier file (repeatable)")
			signing := fs.String("signing-key", "", "private key (move keygen)")
			out := fs.String("out", "", "record file to write")
			owner := fs.String("owner", "", "who registers (free text, signed with the rest)")
			force := fs.Bool("force", false, "overwrite --out")
			if err := parse(fs, args); err != nil {
				return err
			}
			if err := need(fs, "victim", "key", "meta", "signing-key", "out"); err != nil {
				return err
			}
			priv, err := record.ReadPrivateKey(*signing)
			if err != nil {
				return err
			}
			rec, p, err := record.Make(*victim, *key, metas, *owner, buildinfo.Version, priv, time.Now())
			if err != nil {
				return err
			}
			if err := rec.Save(*out, *force); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "registered victim %s, key %s (%d images), %d meta-classifiers at %s -> %s\ndigest (for a timestamping service): %s\n",
				p.Victim.Path, p.Key.Path, p.KeyContent.Images, len(p.Meta), p.Created, *out, rec.Digest)
			return nil
		},
	}
}

// checkRecord loads and checks a registration record for move verify: the signature (against
// pubPath when given), every file it names, and that it vouches for the meta-classifier and
// key in use. It returns the payload for the verification's output.
func checkRecord(recPath, pubPath, metaPath, keyPath string, stderr io.Writer) (*record.Record, *record.Payload, error) {
	var trusted ed25519.PublicKey
	if pubPath != "" {
		var err error
		if trusted, err = record.ReadPublicKey(pubPath); err != nil {
			return nil, nil, err
		}
	} else {
		fmt.Fprintln(stderr, "move: caution: no --public-key: the record's own key checked its signature, which shows the files are unchanged since signing but not who signed")
	}
	rec, p, err := record.Load(recPath, trusted)
	if err != nil {
		return nil, nil, err
	}
	if err := p.Check(filepath.Dir(recPath)); err != nil {
		return nil, nil, fmt.Errorf("registration record %s: %w", recPath, err)
	}
	mh, err := record.HashFile(metaPath)
	if err != nil {
		return nil, nil, err
	}
	kh, err := record.HashFile(keyPath)
	if err != nil {
		return nil, nil, err
	}
	if err := p.Vouches(mh.SHA256, kh.SHA256); err != nil {
		return nil, nil, fmt.Errorf("registration record %s: %w", recPath, err)
	}
	return rec, p, nil
}

// recordJSON is the record as verify reports it.
func recordJSON(rec *record.Record, p *record.Payload) json.RawMessage {
	b, _ := json.Marshal(map[string]any{"digest": rec.Digest, "public_key": rec.PublicKey, "payload": p})
	return b
}

func recordLine(p *record.Payload) string {
	return strings.TrimSpace(fmt.Sprintf("registration record: signed %s (move %s), victim %s, key %s (%d images), %d meta-classifiers: every file matches",
		p.Created, p.Version, p.Victim.Path, p.Key.Path, p.KeyContent.Images, len(p.Meta)))
}

package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"move/internal/buildinfo"
	"move/internal/data"
	"move/internal/record"
	"move/internal/style"
	"move/internal/verify"
	"move/internal/watermark"
)

func init() {
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
  0 on success, 2 on error, 3 on an internal error (a bug).`,
		run: func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			var o registerOptions
			fs := newFlags("register", stderr)
			fs.StringVar(&o.victim, "victim", "", "the victim model file")
			fs.StringVar(&o.key, "key", "", "the watermark key (key.json)")
			var metas listFlag
			fs.Var(&metas, "meta", "a meta-classifier file (repeatable)")
			fs.StringVar(&o.signingKey, "signing-key", "", "private key (move keygen)")
			fs.StringVar(&o.out, "out", "", "record file to write")
			fs.StringVar(&o.owner, "owner", "", "who registers (free text, signed with the rest)")
			fs.BoolVar(&o.force, "force", false, "overwrite --out")
			if err := parse(fs, args); err != nil {
				return err
			}
			if err := need(fs, "victim", "key", "meta", "signing-key", "out"); err != nil {
				return err
			}
			o.metas = metas
			return runRegister(o, stdout)
		},
	}
}

// registerOptions are move register's flags.
type registerOptions struct {
	victim, key, signingKey, out, owner string
	metas                               []string
	force                               bool
}

func runRegister(o registerOptions, stdout io.Writer) error {
	priv, err := record.ReadPrivateKey(o.signingKey)
	if err != nil {
		return err
	}
	rec, p, err := record.Make(o.victim, o.key, o.metas, o.owner, buildinfo.Version, priv, time.Now())
	if err != nil {
		return err
	}
	if err := rec.Save(o.out, o.force); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "registered victim %s, key %s (%d images), %d meta-classifiers at %s -> %s\ndigest (for a timestamping service): %s\n",
		p.Victim.Path, p.Key.Path, p.KeyContent.Images, len(p.Meta), p.Created, o.out, rec.Digest)
	return nil
}

// recordReport is a registration record as move verify reports it.
type recordReport struct {
	Digest    string          `json:"digest"`
	PublicKey string          `json:"public_key"`
	Payload   *record.Payload `json:"payload"`
}

// checkRecord loads and checks a registration record for move verify: the signature (against
// pubPath when given), every file it names, and that it vouches for the meta-classifier and
// key in use (their SHA-256). It returns the record for the verification's output.
func checkRecord(recPath, pubPath, metaHash, keyHash string, stderr io.Writer) (*recordReport, error) {
	var trusted ed25519.PublicKey
	if pubPath != "" {
		var err error
		if trusted, err = record.ReadPublicKey(pubPath); err != nil {
			return nil, err
		}
	} else {
		fmt.Fprintln(stderr, "move: caution: no --public-key: the record's own key checked its signature, which shows the files are unchanged since signing but not who signed")
	}
	rec, p, err := record.Load(recPath, trusted)
	if err != nil {
		return nil, err
	}
	if err := p.Check(filepath.Dir(recPath)); err != nil {
		return nil, fmt.Errorf("registration record %s: %w", recPath, err)
	}
	if err := p.Vouches(metaHash, keyHash); err != nil {
		return nil, fmt.Errorf("registration record %s: %w", recPath, err)
	}
	return &recordReport{Digest: rec.Digest, PublicKey: rec.PublicKey, Payload: p}, nil
}

func recordLine(p *record.Payload) string {
	return strings.TrimSpace(fmt.Sprintf("registration record: signed %s (move %s), victim %s, key %s (%d images), %d meta-classifiers: every file matches",
		p.Created, p.Version, p.Victim.Path, p.Key.Path, p.KeyContent.Images, len(p.Meta)))
}

// rebuttalReport is an accused's registration record that move verify counted.
type rebuttalReport struct {
	Record  string `json:"record"`
	Digest  string `json:"digest"`
	Created string `json:"created"`
	Style   string `json:"style_sha256"`
	Model   string `json:"model_sha256"` // the model the record registers: the suspect it speaks for
}

// loadRebuttal checks the accused's registration record at path (its signature against the
// key it carries, every file it names) and returns its key's style as a rebuttal: the style
// transfer of that key applied to the owner's images. A record is a rebuttal only when it
// is older than the owner's (owner, when given): a style registered after the owner's could
// be a thief's cover, chosen to look like the owner's.
func loadRebuttal(path string, owner *recordReport, stderr io.Writer) (verify.Rebuttal, rebuttalReport, error) {
	rec, p, err := record.Load(path, nil)
	if err != nil {
		return verify.Rebuttal{}, rebuttalReport{}, fmt.Errorf("rebuttal: %w", err)
	}
	if err := p.Check(filepath.Dir(path)); err != nil {
		return verify.Rebuttal{}, rebuttalReport{}, fmt.Errorf("rebuttal record %s: %w", path, err)
	}
	if owner == nil {
		fmt.Fprintf(stderr, "move: caution: no --record of the owner's: nothing shows that rebuttal %s (signed %s) is the older registration\n", path, p.Created)
	} else {
		mine, err1 := time.Parse(time.RFC3339, owner.Payload.Created)
		theirs, err2 := time.Parse(time.RFC3339, p.Created)
		if err1 != nil || err2 != nil {
			return verify.Rebuttal{}, rebuttalReport{}, fmt.Errorf("rebuttal record %s: unreadable creation times (%q, owner's %q)", path, p.Created, owner.Payload.Created)
		}
		if !theirs.Before(mine) {
			return verify.Rebuttal{}, rebuttalReport{}, fmt.Errorf("rebuttal record %s was signed %s, not before the owner's record (%s): a style registered later does not rebut", path, p.Created, owner.Payload.Created)
		}
	}
	keyPath := p.Key.Path
	if !filepath.IsAbs(keyPath) {
		keyPath = filepath.Join(filepath.Dir(path), keyPath)
	}
	k, err := watermark.LoadKey(keyPath)
	if err != nil {
		return verify.Rebuttal{}, rebuttalReport{}, fmt.Errorf("rebuttal record %s: %w", path, err)
	}
	sp, err := k.Path(k.Style.File)
	if err != nil {
		return verify.Rebuttal{}, rebuttalReport{}, fmt.Errorf("rebuttal record %s: %w", path, err)
	}
	raw, err := os.ReadFile(sp)
	if err != nil {
		return verify.Rebuttal{}, rebuttalReport{}, fmt.Errorf("rebuttal record %s: style image: %w", path, err)
	}
	pix, h, w, err := data.DecodeImage(raw, sp, 0)
	if err != nil {
		return verify.Rebuttal{}, rebuttalReport{}, fmt.Errorf("rebuttal record %s: style image: %w", path, err)
	}
	tr, err := style.New(pix, h, w, k.Params)
	if err != nil {
		return verify.Rebuttal{}, rebuttalReport{}, fmt.Errorf("rebuttal record %s: %w", path, err)
	}
	rb := verify.Rebuttal{Name: fmt.Sprintf("%s (%s, registered %s)", k.Style.Origin, filepath.Base(path), p.Created),
		Apply: func(imgs [][]uint8, h, w int) ([][]uint8, error) { return tr.Apply(imgs, h, w), nil }}.Memoised()
	return rb, rebuttalReport{Record: path, Digest: rec.Digest, Created: p.Created, Style: k.Style.SHA256, Model: p.Victim.SHA256}, nil
}

// Package record is the owner's registration record: a small signed statement, made before
// any dispute, of exactly which victim model, watermark key (every original, transformed and
// control image and the style image) and meta-classifiers the owner holds, with the tool
// version and the time. Statistics cannot stop a dishonest claimant who builds their "victim"
// after the fact from an innocent public model, or who tries many style images until one
// flags the target; a record signed (and, through its digest, timestamped by any external
// service) before the suspect existed does.
//
// A record is JSON: the signed payload as base64 (so that the signature covers exactly those
// bytes), the Ed25519 signature over them, the signer's public key, and the payload's SHA-256
// (the digest to hand to a timestamping service). A third party needs only the public key and
// the files: any Ed25519 tool checks the signature over the decoded payload, and sha256sum
// checks each file it names.
package record

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"move/internal/atomicfile"
	"move/internal/watermark"
)

// Format is the record format.
const Format = "move-registration/1"

// File is a file the record vouches for.
type File struct {
	Path   string `json:"path"` // as given when registering (relative paths are relative to the record's folder)
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// KeyContent vouches for every image a key refers to: a digest over the sorted lines
// "<role> <file> <sha256>" of its originals, transformed images, control images and style
// images.
type KeyContent struct {
	Images int    `json:"images"`
	SHA256 string `json:"sha256"`
}

// Payload is what the owner signs.
type Payload struct {
	Format     string     `json:"format"`
	Version    string     `json:"move_version"`
	Created    string     `json:"created"` // RFC 3339, UTC
	Owner      string     `json:"owner,omitempty"`
	Victim     File       `json:"victim"`
	Key        File       `json:"key"`
	KeyContent KeyContent `json:"key_content"`
	Meta       []File     `json:"meta"`
}

// Record is a signed payload.
type Record struct {
	Format    string `json:"format"`
	Payload   string `json:"payload"`    // base64 of the payload's JSON: the signed bytes
	Signature string `json:"signature"`  // base64 Ed25519 signature over the payload bytes
	PublicKey string `json:"public_key"` // base64 of the signer's 32-byte Ed25519 public key
	Digest    string `json:"digest"`     // SHA-256 of the payload bytes (hex): hand it to a timestamping service
}

// HashFile returns a file's SHA-256 and size.
func HashFile(path string) (File, error) {
	f, err := os.Open(path)
	if err != nil {
		return File{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return File{}, fmt.Errorf("reading %s: %w", path, err)
	}
	return File{Path: path, SHA256: hex.EncodeToString(h.Sum(nil)), Size: n}, nil
}

// HashKeyContent digests every image the key at keyPath refers to.
func HashKeyContent(keyPath string) (KeyContent, error) {
	k, err := watermark.LoadKey(keyPath)
	if err != nil {
		return KeyContent{}, err
	}
	var lines []string
	add := func(role, name, path string) error {
		f, err := HashFile(path)
		if err != nil {
			return fmt.Errorf("key image: %w", err)
		}
		lines = append(lines, role+" "+name+" "+f.SHA256)
		return nil
	}
	addKeyFile := func(role, rel string) error {
		p, err := k.Path(rel)
		if err != nil {
			return err
		}
		return add(role, rel, p)
	}
	if err := addKeyFile("style", k.Style.File); err != nil {
		return KeyContent{}, err
	}
	if k.Stylizer != "" {
		if err := addKeyFile("stylizer", k.Stylizer); err != nil {
			return KeyContent{}, err
		}
	}
	for i, s := range k.Samples {
		orig, err := k.Original(i)
		if err != nil {
			return KeyContent{}, err
		}
		if err := add("original", s.Source, orig); err != nil {
			return KeyContent{}, err
		}
		styled, err := k.Path(s.Styled)
		if err != nil {
			return KeyContent{}, err
		}
		if err := add("styled", s.Styled, styled); err != nil {
			return KeyContent{}, err
		}
	}
	for _, c := range k.Controls {
		if err := addKeyFile("control-style", c.Style.File); err != nil {
			return KeyContent{}, err
		}
		if c.Stylizer != "" {
			if err := addKeyFile("control-stylizer", c.Stylizer); err != nil {
				return KeyContent{}, err
			}
		}
		for _, f := range c.Files {
			if err := addKeyFile("control", f); err != nil {
				return KeyContent{}, err
			}
		}
	}
	sort.Strings(lines)
	sum := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	return KeyContent{Images: len(lines), SHA256: hex.EncodeToString(sum[:])}, nil
}

// GenerateKey writes a new Ed25519 key pair: the private key as PKCS #8 PEM (mode 0600) and
// the public key as PKIX PEM, the formats openssl reads. Existing files are kept unless
// overwrite.
func GenerateKey(privPath, pubPath string, overwrite bool) error {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	pk, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return err
	}
	pb, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return err
	}
	if !overwrite {
		for _, p := range []string{privPath, pubPath} {
			if _, err := os.Stat(p); err == nil {
				return fmt.Errorf("%s: %w", p, atomicfile.ErrExists)
			}
		}
	}
	if err := atomicfile.WriteBytes(privPath, overwrite, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk})); err != nil {
		return err
	}
	if err := os.Chmod(privPath, 0o600); err != nil {
		return err
	}
	return atomicfile.WriteBytes(pubPath, overwrite, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pb}))
}

// ReadPrivateKey reads a PKCS #8 PEM Ed25519 private key.
func ReadPrivateKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s: not a PEM private key (move keygen writes one)", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an Ed25519 key", path)
	}
	return ek, nil
}

// ReadPublicKey reads a PKIX PEM Ed25519 public key.
func ReadPublicKey(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("%s: not a PEM public key (move keygen writes one)", path)
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ek, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an Ed25519 key", path)
	}
	return ek, nil
}

// Make hashes the files and signs the payload.
func Make(victim, key string, metas []string, owner, version string, priv ed25519.PrivateKey, now time.Time) (*Record, *Payload, error) {
	if len(metas) == 0 {
		return nil, nil, errors.New("no meta-classifier to register")
	}
	p := &Payload{Format: Format, Version: version, Created: now.UTC().Format(time.RFC3339), Owner: owner}
	var err error
	if p.Victim, err = HashFile(victim); err != nil {
		return nil, nil, fmt.Errorf("victim: %w", err)
	}
	if p.Key, err = HashFile(key); err != nil {
		return nil, nil, fmt.Errorf("key: %w", err)
	}
	if p.KeyContent, err = HashKeyContent(key); err != nil {
		return nil, nil, err
	}
	for _, m := range metas {
		f, err := HashFile(m)
		if err != nil {
			return nil, nil, fmt.Errorf("meta-classifier: %w", err)
		}
		p.Meta = append(p.Meta, f)
	}
	body, err := json.Marshal(p)
	if err != nil {
		return nil, nil, err
	}
	sum := sha256.Sum256(body)
	r := &Record{Format: Format, Payload: base64.StdEncoding.EncodeToString(body),
		Signature: base64.StdEncoding.EncodeToString(ed25519.Sign(priv, body)),
		PublicKey: base64.StdEncoding.EncodeToString(priv.Public().(ed25519.PublicKey)), Digest: hex.EncodeToString(sum[:])}
	return r, p, nil
}

// Save writes the record (atomically; an existing file only with overwrite).
func (r *Record) Save(path string, overwrite bool) error {
	b, _ := json.MarshalIndent(r, "", "  ")
	return atomicfile.WriteBytes(path, overwrite, append(b, '\n'))
}

// Load reads a record and checks its signature: against trusted when given, else against the
// public key it carries (which proves the files unchanged since signing, not who signed).
func Load(path string, trusted ed25519.PublicKey) (*Record, *Payload, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("reading registration record: %w", err)
	}
	var r Record
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, nil, fmt.Errorf("%s: not a registration record (truncated or damaged?): %w", path, err)
	}
	if r.Format != Format {
		return nil, nil, fmt.Errorf("%s: unknown record format %q", path, r.Format)
	}
	body, err := base64.StdEncoding.DecodeString(r.Payload)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: payload is not base64: %w", path, err)
	}
	sig, err := base64.StdEncoding.DecodeString(r.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, nil, fmt.Errorf("%s: the signature is damaged", path)
	}
	pub, err := base64.StdEncoding.DecodeString(r.PublicKey)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return nil, nil, fmt.Errorf("%s: the public key it carries is damaged", path)
	}
	if trusted != nil && !bytes.Equal(trusted, pub) {
		return nil, nil, fmt.Errorf("%s was signed by another key than the public key given", path)
	}
	if !ed25519.Verify(ed25519.PublicKey(pub), body, sig) {
		return nil, nil, fmt.Errorf("%s: the signature does not match its contents: the record was altered", path)
	}
	if sum := sha256.Sum256(body); hex.EncodeToString(sum[:]) != r.Digest {
		return nil, nil, fmt.Errorf("%s: the digest does not match the signed payload", path)
	}
	var p Payload
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, nil, fmt.Errorf("%s: signed payload: %w", path, err)
	}
	return &r, &p, nil
}

// Check re-hashes every file the payload names (relative paths from the record's folder) and
// says which one no longer matches.
func (p *Payload) Check(recordDir string) error {
	at := func(f string) string {
		if filepath.IsAbs(f) {
			return f
		}
		return filepath.Join(recordDir, f)
	}
	check := func(what string, f File) error {
		got, err := HashFile(at(f.Path))
		if err != nil {
			return fmt.Errorf("%s %s: %w", what, f.Path, err)
		}
		if got.SHA256 != f.SHA256 {
			return fmt.Errorf("%s %s has changed since it was registered (SHA-256 %s, registered %s)", what, f.Path, got.SHA256[:16], f.SHA256[:16])
		}
		return nil
	}
	if err := check("victim", p.Victim); err != nil {
		return err
	}
	if err := check("key", p.Key); err != nil {
		return err
	}
	kc, err := HashKeyContent(at(p.Key.Path))
	if err != nil {
		return err
	}
	if kc != p.KeyContent {
		return fmt.Errorf("the images of key %s have changed since it was registered (%d images now, %d registered; digest %s, registered %s)",
			p.Key.Path, kc.Images, p.KeyContent.Images, kc.SHA256[:16], p.KeyContent.SHA256[:16])
	}
	for _, m := range p.Meta {
		if err := check("meta-classifier", m); err != nil {
			return err
		}
	}
	return nil
}

// Vouches reports whether the payload names a meta-classifier and a key with these hashes.
func (p *Payload) Vouches(metaSHA, keySHA string) error {
	if keySHA != p.Key.SHA256 {
		return fmt.Errorf("the key given is not the registered one (%s)", p.Key.Path)
	}
	for _, m := range p.Meta {
		if m.SHA256 == metaSHA {
			return nil
		}
	}
	return errors.New("the meta-classifier given is not one the record registers")
}

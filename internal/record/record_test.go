package record

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"move/internal/data"
	"move/internal/style"
	"move/internal/watermark"
)

// setup writes a small key (with controls), a victim and a meta file, signs a record and
// returns the paths.
func setup(t *testing.T) (dir, rec, pub string, key *watermark.Key) {
	t.Helper()
	dir = t.TempDir()
	src := filepath.Join(dir, "clean")
	s := data.Synthetic(12, 2, 16, 1)
	for i := range s.Len() {
		d := filepath.Join(src, "train", s.Classes[s.Labels[i]])
		os.MkdirAll(d, 0o755)
		if err := data.WritePNG(filepath.Join(d, string(rune('a'+i))+".png"), s.Image(i), 16, 16, false); err != nil {
			t.Fatal(err)
		}
	}
	st := data.Synthetic(1, 1, 32, 5)
	sp := filepath.Join(dir, "style.png")
	data.WritePNG(sp, st.Image(0), 32, 32, false)
	o := style.Default()
	o.Steps, o.StyleSize = 3, 32
	out := filepath.Join(dir, "marked")
	if _, err := watermark.Embed(context.Background(), watermark.Options{Data: src, StyleImage: sp, Out: out, Rate: 0.5, Seed: 1, Style: o}); err != nil {
		t.Fatal(err)
	}
	kp := filepath.Join(out, "key.json")
	var err error
	if key, err = watermark.AddControls(context.Background(), kp, watermark.ControlOptions{Count: 1, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "victim.safetensors"), []byte("victim weights"), 0o644)
	os.WriteFile(filepath.Join(dir, "meta.safetensors"), []byte("meta weights"), 0o644)
	if err := GenerateKey(filepath.Join(dir, "owner.key"), filepath.Join(dir, "owner.pub"), false); err != nil {
		t.Fatal(err)
	}
	priv, err := ReadPrivateKey(filepath.Join(dir, "owner.key"))
	if err != nil {
		t.Fatal(err)
	}
	// Paths relative to the record's folder, as an owner registering beside the files would.
	wd, _ := os.Getwd()
	defer os.Chdir(wd)
	os.Chdir(dir)
	r, p, err := Make("victim.safetensors", filepath.Join("marked", "key.json"), []string{"meta.safetensors"}, "owner", "test", priv, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	// 6 samples: originals and styled (12), 6 controls, the style and the control style.
	if p.KeyContent.Images != 20 {
		t.Fatalf("key content covers %d images, want 20", p.KeyContent.Images)
	}
	rec = filepath.Join(dir, "owner.rec")
	if err := r.Save(rec, false); err != nil {
		t.Fatal(err)
	}
	return dir, rec, filepath.Join(dir, "owner.pub"), key
}

func TestRecordRoundTrip(t *testing.T) {
	dir, rec, pub, _ := setup(t)
	pk, err := ReadPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	r, p, err := Load(rec, pk)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Check(dir); err != nil {
		t.Fatal(err)
	}
	// A third party's check with nothing but the public key: the signature is over the
	// decoded payload bytes, and the digest is their SHA-256.
	body, _ := base64.StdEncoding.DecodeString(r.Payload)
	sig, _ := base64.StdEncoding.DecodeString(r.Signature)
	if !ed25519.Verify(pk, body, sig) {
		t.Fatal("the signature does not verify over the payload bytes")
	}
	if sum := sha256.Sum256(body); r.Digest != hexs(sum[:]) {
		t.Fatal("the digest is not the payload's SHA-256")
	}
	meta, _ := HashFile(filepath.Join(dir, "meta.safetensors"))
	key, _ := HashFile(filepath.Join(dir, "marked", "key.json"))
	if err := p.Vouches(meta.SHA256, key.SHA256); err != nil {
		t.Fatal(err)
	}
	if err := p.Vouches(key.SHA256, key.SHA256); err == nil {
		t.Fatal("a meta-classifier the record does not name was accepted")
	}
}

func hexs(b []byte) string {
	const d = "0123456789abcdef"
	out := make([]byte, 2*len(b))
	for i, x := range b {
		out[2*i], out[2*i+1] = d[x>>4], d[x&15]
	}
	return string(out)
}

// Each kind of tampering is refused with a message naming what does not match.
func TestRecordRefusesTampering(t *testing.T) {
	for _, c := range []struct {
		name   string
		tamper func(t *testing.T, dir, rec string, key *watermark.Key)
		want   string
		onLoad bool
	}{
		{"victim", func(t *testing.T, dir, _ string, _ *watermark.Key) {
			os.WriteFile(filepath.Join(dir, "victim.safetensors"), []byte("victim weightz"), 0o644)
		}, "victim victim.safetensors has changed", false},
		{"key image", func(t *testing.T, dir, _ string, key *watermark.Key) {
			p := filepath.Join(dir, "marked", key.Samples[0].Styled)
			b, _ := os.ReadFile(p)
			b[len(b)-20] ^= 1
			os.WriteFile(p, b, 0o644)
		}, "images of key", false},
		{"control image", func(t *testing.T, dir, _ string, key *watermark.Key) {
			p := filepath.Join(dir, "marked", key.Controls[0].Files[0])
			b, _ := os.ReadFile(p)
			b[len(b)-20] ^= 1
			os.WriteFile(p, b, 0o644)
		}, "images of key", false},
		{"meta", func(t *testing.T, dir, _ string, _ *watermark.Key) {
			os.WriteFile(filepath.Join(dir, "meta.safetensors"), []byte("other meta"), 0o644)
		}, "meta-classifier meta.safetensors has changed", false},
		{"wrong public key", func(t *testing.T, dir, _ string, _ *watermark.Key) {
			if err := GenerateKey(filepath.Join(dir, "other.key"), filepath.Join(dir, "owner.pub"), true); err != nil {
				t.Fatal(err)
			}
		}, "signed by another key", true},
		{"truncated", func(t *testing.T, _, rec string, _ *watermark.Key) {
			b, _ := os.ReadFile(rec)
			os.WriteFile(rec, b[:len(b)/2], 0o644)
		}, "truncated or damaged", true},
		{"altered payload", func(t *testing.T, _, rec string, _ *watermark.Key) {
			b, _ := os.ReadFile(rec)
			var r Record
			json.Unmarshal(b, &r)
			body, _ := base64.StdEncoding.DecodeString(r.Payload)
			body = []byte(strings.Replace(string(body), `"owner":"owner"`, `"owner":"thief"`, 1))
			r.Payload = base64.StdEncoding.EncodeToString(body)
			nb, _ := json.Marshal(r)
			os.WriteFile(rec, nb, 0o644)
		}, "signature does not match", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir, rec, pub, key := setup(t)
			c.tamper(t, dir, rec, key)
			pk, err := ReadPublicKey(pub)
			if err != nil {
				t.Fatal(err)
			}
			_, p, err := Load(rec, pk)
			if !c.onLoad {
				if err != nil {
					t.Fatalf("loading: %v", err)
				}
				err = p.Check(dir)
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"move/internal/data"
)

// The owner's path end to end through the CLI: embed (with control styles), train, meta,
// keygen, register, and verify --record; then each tampering is refused before any test runs.
func TestRegisterAndVerifyRecord(t *testing.T) {
	if testing.Short() {
		t.Skip("trains three small models")
	}
	dir := t.TempDir()
	clean := filepath.Join(dir, "clean")
	if err := data.WriteFolder(data.Synthetic(240, 4, 16, 1), filepath.Join(clean, "train")); err != nil {
		t.Fatal(err)
	}
	st := data.Synthetic(1, 1, 32, 7)
	if err := data.WritePNG(filepath.Join(dir, "style.png"), st.Image(0), 32, 32, false); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	runOK := func(name string, args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if err := commands[name].run(ctx, args, &out, &errb); err != nil {
			var neg negative
			if !errors.As(err, &neg) {
				t.Fatalf("move %s %s: %v\n%s", name, strings.Join(args, " "), err, errb.String())
			}
		}
		return out.String()
	}
	p := func(s ...string) string { return filepath.Join(append([]string{dir}, s...)...) }
	runOK("embed", "--data", clean, "--style", p("style.png"), "--out", p("marked"), "--rate", "0.25", "--steps", "5",
		"--style-size", "32", "--controls", "2", "--control-samples", "40")
	for name, src := range map[string]string{"victim": p("marked"), "b1": p("clean"), "b2": p("clean")} {
		runOK("train", "--data", src, "--epochs", "1", "--batch", "40", "--out", p(name+".safetensors"), "--seed", map[string]string{"victim": "1", "b1": "2", "b2": "3"}[name])
	}
	runOK("meta", "--mode", "black", "--victim", p("victim.safetensors"), "--benign", p("b1.safetensors"), "--key", p("marked", "key.json"), "--out", p("meta.safetensors"))
	// A white-box classifier of another family, with the owner's further models in its classes
	// (here simply the other benign model): the family and their hashes are recorded.
	info := runOK("meta", "--mode", "white", "--features", "input-grad", "--victim", p("victim.safetensors"), "--benign", p("b1.safetensors"),
		"--positive", p("b2.safetensors"), "--negative", p("b1.safetensors"), "--key", p("marked", "key.json"), "--out", p("meta-ig.safetensors"), "--json")
	var rec struct {
		Layout   string   `json:"layout"`
		Positive []string `json:"positive_sha256"`
		Negative []string `json:"negative_sha256"`
	}
	if err := json.Unmarshal([]byte(info), &rec); err != nil || rec.Layout != "input-grad" || len(rec.Positive) != 1 || len(rec.Negative) != 1 || rec.Positive[0] == rec.Negative[0] {
		t.Fatalf("meta --features input-grad --positive --negative recorded %+v (%v)", rec, err)
	}
	runOK("keygen", "--out", p("owner"))
	out := runOK("register", "--victim", p("victim.safetensors"), "--key", p("marked", "key.json"), "--meta", p("meta.safetensors"),
		"--signing-key", p("owner.key"), "--out", p("owner.rec"))
	if !strings.Contains(out, "digest (for a timestamping service)") {
		t.Fatalf("register printed %q", out)
	}
	verify := func(extra ...string) (string, error) {
		var o, e bytes.Buffer
		args := append([]string{"--meta", p("meta.safetensors"), "--key", p("marked", "key.json"), "--benign", p("b2.safetensors"),
			"--suspect", p("victim.safetensors"), "--record", p("owner.rec"), "--m", "10"}, extra...)
		err := commands["verify"].run(ctx, args, &o, &e)
		return o.String(), err
	}
	got, err := verify("--public-key", p("owner.pub"))
	var neg negative
	if err != nil && !errors.As(err, &neg) {
		t.Fatalf("verify --record: %v", err)
	}
	if !strings.Contains(got, "registration record: signed") || !strings.Contains(got, "every file matches") {
		t.Fatalf("verify output lacks the record: %q", got)
	}
	// Another owner's public key.
	runOK("keygen", "--out", p("other"))
	if _, err := verify("--public-key", p("other.pub")); err == nil || !strings.Contains(err.Error(), "signed by another key") {
		t.Fatalf("wrong public key: %v", err)
	}
	// A tampered meta-classifier.
	b, _ := os.ReadFile(p("meta.safetensors"))
	os.WriteFile(p("meta.safetensors"), append(b, ' '), 0o644)
	if _, err := verify("--public-key", p("owner.pub")); err == nil || !strings.Contains(err.Error(), "meta.safetensors has changed") {
		t.Fatalf("tampered meta-classifier: %v", err)
	}
	os.WriteFile(p("meta.safetensors"), b, 0o644)
	// A tampered victim.
	v, _ := os.ReadFile(p("victim.safetensors"))
	v[len(v)-1] ^= 1
	os.WriteFile(p("victim.safetensors"), v, 0o644)
	if _, err := verify("--public-key", p("owner.pub")); err == nil || !strings.Contains(err.Error(), "victim.safetensors has changed") {
		t.Fatalf("tampered victim: %v", err)
	}
	v[len(v)-1] ^= 1
	os.WriteFile(p("victim.safetensors"), v, 0o644)

	// The accused's own watermark as a rebuttal: their key (another style) registered with
	// their own signing key. Registered after the owner's record, it is refused.
	st2 := data.Synthetic(1, 1, 32, 9)
	if err := data.WritePNG(filepath.Join(dir, "theirs.png"), st2.Image(0), 32, 32, false); err != nil {
		t.Fatal(err)
	}
	runOK("embed", "--data", clean, "--style", p("theirs.png"), "--out", p("theirs"), "--rate", "0.25", "--steps", "5", "--style-size", "32")
	runOK("keygen", "--out", p("accused"))
	// (The suspect verified below is victim.safetensors; here it stands for the accused's model.)
	runOK("register", "--victim", p("victim.safetensors"), "--key", p("theirs", "key.json"), "--meta", p("meta.safetensors"),
		"--signing-key", p("accused.key"), "--out", p("theirs.rec"))
	runOK("register", "--victim", p("b1.safetensors"), "--key", p("theirs", "key.json"), "--meta", p("meta.safetensors"),
		"--signing-key", p("accused.key"), "--out", p("elsewhere.rec"))
	if _, err := verify("--public-key", p("owner.pub"), "--rebuttal", p("theirs.rec")); err == nil || !strings.Contains(err.Error(), "not before the owner's record") {
		t.Fatalf("a rebuttal registered after the owner's record: %v", err)
	}
	// Against an owner's record signed later, it counts: the verdict's gain test has the
	// accused's style among its controls, and the output says so.
	time.Sleep(1100 * time.Millisecond) // records carry whole seconds
	runOK("register", "--victim", p("victim.safetensors"), "--key", p("marked", "key.json"), "--meta", p("meta.safetensors"),
		"--signing-key", p("owner.key"), "--out", p("owner2.rec"))
	got, err = verify("--public-key", p("owner.pub"), "--record", p("owner2.rec"), "--rebuttal", p("theirs.rec"))
	if err != nil && !errors.As(err, &neg) {
		t.Fatalf("verify --rebuttal: %v", err)
	}
	if !strings.Contains(got, "style gain with the key's control styles only") || !strings.Contains(got, "theirs.png (theirs.rec, registered") {
		t.Fatalf("verify --rebuttal output lacks the rebuttal: %q", got)
	}
	// A rebuttal speaks only for the model its record registers.
	if _, err := verify("--public-key", p("owner.pub"), "--record", p("owner2.rec"), "--rebuttal", p("elsewhere.rec")); err == nil ||
		!strings.Contains(err.Error(), "none of the suspects") {
		t.Fatalf("a rebuttal registering another model: %v", err)
	}
	// A rebuttal whose key changed since it was registered is refused.
	kb, _ := os.ReadFile(p("theirs", "key.json"))
	os.WriteFile(p("theirs", "key.json"), append(kb, ' '), 0o644)
	if _, err := verify("--public-key", p("owner.pub"), "--record", p("owner2.rec"), "--rebuttal", p("theirs.rec")); err == nil ||
		!strings.Contains(err.Error(), "rebuttal record") || !strings.Contains(err.Error(), "has changed") {
		t.Fatalf("a rebuttal with a changed key: %v", err)
	}
}

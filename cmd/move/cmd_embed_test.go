package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"move/internal/data"
)

// runMove runs a command line in process and returns its exit status and outputs.
func runMove(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestEmbedCommand(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "clean")
	for split, seed := range map[string]uint64{"train": 1, "test": 2} {
		s := data.Synthetic(20, 2, 16, seed)
		for i := range s.Len() {
			d := filepath.Join(src, split, s.Classes[s.Labels[i]])
			os.MkdirAll(d, 0o755)
			data.WritePNG(filepath.Join(d, string(rune('a'+i))+".png"), s.Image(i), 16, 16, false)
		}
	}
	st := filepath.Join(dir, "style.png")
	p := data.Synthetic(1, 1, 40, 7)
	data.WritePNG(st, p.Image(0), 40, 40, false)
	out := filepath.Join(dir, "marked")
	code, stdout, stderr := runMove("embed", "--data", src, "--style", st, "--out", out, "--rate", "0.2",
		"--steps", "30", "--style-size", "32", "--preview", filepath.Join(dir, "sheet.png"), "--check")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "check (a) style distance") || !strings.Contains(stdout, "pass") {
		t.Fatalf("no passing style check in output:\n%s", stdout)
	}
	for _, f := range []string{"key.json", "style.png", "test"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Fatalf("%s missing from the output", f)
		}
	}
	if _, _, _, err := data.ReadImage(filepath.Join(dir, "sheet.png"), 0); err != nil {
		t.Fatalf("preview: %v", err)
	}
	// The content check with a (tiny) classifier trained on the clean set: it must run and
	// report both accuracies; whether it passes depends on the classifier.
	model := filepath.Join(dir, "clean.safetensors")
	if code, _, stderr := runMove("train", "--data", src, "--arch", "resnet20", "--epochs", "1", "--batch", "20", "--out", model); code != 0 {
		t.Fatalf("training the check model: exit %d: %s", code, stderr)
	}
	code, stdout, stderr = runMove("embed", "--data", src, "--style", st, "--out", filepath.Join(dir, "m2"), "--rate", "0.2",
		"--steps", "10", "--style-size", "32", "--check", "--check-model", model, "--check-images", "20")
	if code == 2 || !strings.Contains(stdout, "check (b) content: accuracy") {
		t.Fatalf("content check: exit %d\n%s\n%s", code, stdout, stderr)
	}

	// Refuses to overwrite; bad inputs exit 2 with the problem named.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--out", out}, "already exists"},
		{[]string{"--out", filepath.Join(dir, "o2"), "--rate", "0"}, "invalid value \"0\" for flag -rate: 0 is outside (0, 1]"},
		{[]string{"--out", filepath.Join(dir, "o2"), "--style", filepath.Join(dir, "none.jpg")}, "none.jpg"},
		{[]string{"--out", filepath.Join(src, "inner")}, "inside the input"},
		{[]string{"--out", filepath.Join(dir, "o2"), "--preview", filepath.Join(dir, "nowhere", "p.png")}, "its folder " + filepath.Join(dir, "nowhere") + " does not exist"},
		{[]string{"--out", filepath.Join(dir, "o2"), "--patch", "3", "--check"}, "--check measures a style transfer"},
		{[]string{"--out", filepath.Join(dir, "o2"), "--patch", "16", "--controls", "0"}, "does not fit a 16x16 image"},
	} {
		args := append([]string{"embed", "--data", src, "--style", st, "--steps", "2"}, c.args...)
		code, _, stderr := runMove(args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q, want exit 2 mentioning %q", c.args, code, stderr, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "o2")); err == nil {
		t.Fatal("a failed embed left its output")
	}
	// The patch variant: the style image shrunk to 3x3 and stamped; the key says so.
	code, stdout, stderr = runMove("embed", "--data", src, "--style", st, "--out", filepath.Join(dir, "patched"), "--rate", "0.2", "--patch", "3", "--controls", "0")
	if code != 0 {
		t.Fatalf("--patch: exit %d\n%s\n%s", code, stdout, stderr)
	}
	kb, err := os.ReadFile(filepath.Join(dir, "patched", "key.json"))
	if err != nil || !strings.Contains(string(kb), `"method": "patch"`) || !strings.Contains(string(kb), `"size": 3`) {
		t.Fatalf("--patch key: %v\n%s", err, kb)
	}
}

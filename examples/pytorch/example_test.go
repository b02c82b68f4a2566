// Package pytorch is move's example of the bring-your-own-model workflow (run.sh, train.py):
// the owner trains in PyTorch and move does the rest. This test runs it on a small generated
// data set when Debian's python3-torch and python3-torchvision are installed.
package pytorch

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"move/internal/data"
)

const python = "/usr/bin/python3"

func TestPyTorchWorkflow(t *testing.T) {
	if testing.Short() {
		t.Skip("trains six small PyTorch models")
	}
	if err := exec.Command(python, "-c", "import torch, torchvision").Run(); err != nil {
		t.Skipf("skipped: %s cannot import torch and torchvision (apt-get install python3-torch python3-torchvision): %v", python, err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "move"), "move/cmd/move")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building move: %v\n%s", err, out)
	}
	clean := filepath.Join(dir, "clean")
	if err := data.WriteFolder(data.Synthetic(600, 4, 16, 1), filepath.Join(clean, "train")); err != nil {
		t.Fatal(err)
	}
	if err := data.WriteFolder(data.Synthetic(120, 4, 16, 2), filepath.Join(clean, "test")); err != nil {
		t.Fatal(err)
	}
	st := data.Synthetic(1, 1, 32, 7)
	style := filepath.Join(dir, "style.png")
	if err := data.WritePNG(style, st.Image(0), 32, 32, false); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "run.sh", clean, style, filepath.Join(dir, "work"), "8")
	cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"EMBED_FLAGS=--steps 10 --style-size 32 --control-samples 120")
	out, err := cmd.CombinedOutput()
	s := string(out)
	t.Logf("run.sh output:\n%s", lastLines(s, 40))
	if err != nil {
		t.Fatalf("run.sh: %v", err)
	}
	for _, mode := range []string{"white", "black"} {
		if !regexp.MustCompile(mode + `-box meta-classifier \(.*\): train accuracy [0-9.]+, held-out accuracy [0-9.]+`).MatchString(s) {
			t.Errorf("no %s-box meta-classifier in the output", mode)
		}
	}
	// One row per suspect in each mode; the copy carries the victim's weights: white-box flags it.
	if n := len(regexp.MustCompile(`(?m)copy\.onnx .*(STOLEN|INCONCLUSIVE)`).FindAllString(s, -1)); n != 2 {
		t.Errorf("%d rows for the copy, want one per mode", n)
	}
	if !regexp.MustCompile(`(?m)copy\.onnx .* STOLEN\s*$`).MatchString(s) {
		t.Error("the copy of the victim was not flagged in either mode")
	}
	for _, name := range []string{"student.onnx", "independent.onnx"} {
		if !strings.Contains(s, name) {
			t.Errorf("no verdict for %s", name)
		}
	}
	if !strings.Contains(s, "queries spent on http://") {
		t.Error("the served student was not verified")
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

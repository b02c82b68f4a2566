package onnx

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"move/internal/models"
)

// Our exports pass onnx.checker with full shape inference (Debian's python3-onnx), when it is
// installed.
func TestExportsPassONNXChecker(t *testing.T) {
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import onnx").Run(); err != nil {
		t.Skip("python3-onnx is not installed (apt-get install python3-onnx)")
	}
	dir := t.TempDir()
	var files []string
	for _, arch := range models.Names() {
		if testing.Short() && (arch == "wrn28-10" || arch == "resnet34" || arch == "resnet56") {
			continue // large; their layers are the same as smaller ones'
		}
		m, err := models.New(arch, 10, 1)
		if err != nil {
			t.Fatal(err)
		}
		for _, fold := range []bool{false, true} {
			b, err := Export(m, 32, map[string]string{"move": "{}"}, ExportOptions{FoldBatchNorms: fold, Producer: "test"})
			if err != nil {
				t.Fatalf("%s: %v", arch, err)
			}
			p := filepath.Join(dir, arch+map[bool]string{false: ".onnx", true: "-folded.onnx"}[fold])
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			files = append(files, p)
		}
	}
	script := `import sys, onnx
for p in sys.argv[1:]:
    onnx.checker.check_model(p, full_check=True)
    print("ok", p)`
	out, err := exec.Command(py, append([]string{"-c", script}, files...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("onnx.checker: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

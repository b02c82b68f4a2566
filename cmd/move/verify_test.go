package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"move/internal/data"
	"move/internal/meta"
	"move/internal/modelfile"
	"move/internal/models"
)

// verify refuses, before any work, a benign reference that the meta-classifier was trained
// against, and names the file; --allow-seen-benign lets it through with a caution.
func TestVerifyRefusesSeenBenign(t *testing.T) {
	dir := t.TempDir()
	benign := filepath.Join(dir, "benign.safetensors")
	m, _ := models.New("resnet20", 10, 1)
	if err := modelfile.Save(benign, m, modelfile.Info{Classes: data.CIFAR10Classes, InputSize: 32, Norm: data.CIFAR10Norm}, false); err != nil {
		t.Fatal(err)
	}
	h, err := fileHash(benign)
	if err != nil {
		t.Fatal(err)
	}
	xs := [][]float32{{1, 0}, {0, 1}, {1, 0.1}, {0.1, 1}}
	c, err := meta.Fit(xs, []int{1, 0, 1, 0}, meta.Info{Mode: "black", Layout: "prob-diff-5aug", BenignHashes: []string{h}}, meta.Options{Epochs: 1})
	if err != nil {
		t.Fatal(err)
	}
	metaPath := filepath.Join(dir, "meta.safetensors")
	if err := c.Save(metaPath, false); err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, "key.json")
	os.WriteFile(keyPath, []byte("{}"), 0o644)
	var stdout, stderr bytes.Buffer
	err = commands["verify"].run(context.Background(), []string{"--meta", metaPath, "--key", keyPath, "--benign", benign, "--suspect", benign}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), benign+" trained this meta-classifier") {
		t.Fatalf("err = %v, want a refusal naming %s", err, benign)
	}
	err = commands["verify"].run(context.Background(), []string{"--meta", metaPath, "--key", keyPath, "--benign", benign, "--suspect", benign, "--allow-seen-benign"}, &stdout, &stderr)
	if err == nil || strings.Contains(err.Error(), "trained this meta-classifier") {
		t.Fatalf("with --allow-seen-benign: err = %v, want it to go on (and fail later on the empty key)", err)
	}
	if !strings.Contains(stderr.String(), "caution") {
		t.Errorf("no caution on stderr: %q", stderr.String())
	}
}

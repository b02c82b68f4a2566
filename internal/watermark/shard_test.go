package watermark

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"move/internal/data"
)

// tree maps every file under dir to its bytes.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Four shards and a merge give the folder and key of one unsharded run, byte for byte; a
// missing, foreign or duplicated shard is refused (issue 18).
func TestShardsMergeToTheUnshardedRun(t *testing.T) {
	_, st := makeFolder(t)
	root := filepath.Join(t.TempDir(), "clean") // 400 images, 200 styled: four chunks of 64 or fewer
	if err := data.WriteFolder(data.Synthetic(400, 2, 8, 5), filepath.Join(root, "train")); err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	opts := func(out string) Options {
		return Options{Data: root, StyleImage: st, Out: out, Rate: 0.5, Seed: 3, Style: fastStyle(), Command: "move embed", Created: "2026-12-02T00:00:00Z"}
	}
	out := filepath.Join(base, "m")
	if _, err := Embed(context.Background(), opts(out)); err != nil {
		t.Fatal(err)
	}
	whole := filepath.Join(base, "whole") // moved away: the merge writes the same output path
	if err := os.Rename(out, whole); err != nil {
		t.Fatal(err)
	}
	total := 0
	for i := range 4 {
		o := opts(ShardDir(out, i, 4))
		o.Shard, o.Shards = i, 4
		k, err := Embed(context.Background(), o)
		if err != nil {
			t.Fatalf("shard %d: %v", i, err)
		}
		total += len(k.Samples)
	}
	// A merge with a shard missing is refused; then with all four it succeeds.
	os.Rename(ShardDir(out, 2, 4), ShardDir(out, 2, 4)+".away")
	o := opts(out)
	o.Shards = 4
	if _, err := Merge(context.Background(), o); err == nil || !strings.Contains(err.Error(), "shard 2 of 4 is missing") {
		t.Fatalf("a missing shard: %v", err)
	}
	os.Rename(ShardDir(out, 2, 4)+".away", ShardDir(out, 2, 4))
	// Other settings.
	other := o
	other.Seed = 4
	if _, err := Merge(context.Background(), other); err == nil || !strings.Contains(err.Error(), "other settings") {
		t.Fatalf("a merge with another seed: %v", err)
	}
	k, err := Merge(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(k.Samples) != total || total != 200 {
		t.Fatalf("merged %d samples, the shards styled %d", len(k.Samples), total)
	}
	a, b := tree(t, whole), tree(t, out)
	if len(a) != len(b) {
		t.Fatalf("%d files unsharded, %d merged", len(a), len(b))
	}
	for name, content := range a {
		if b[name] != content {
			t.Fatalf("%s differs between the unsharded run and the merge", name)
		}
	}
	// A duplicated shard: shard 1's folder holding shard 0's manifest.
	os.RemoveAll(out)
	os.RemoveAll(ShardDir(out, 1, 4))
	if err := os.CopyFS(ShardDir(out, 1, 4), os.DirFS(ShardDir(out, 0, 4))); err != nil {
		t.Fatal(err)
	}
	if _, err := Merge(context.Background(), o); err == nil || !strings.Contains(err.Error(), "holds shard 0 of 4, not 1 of 4") {
		t.Fatalf("a duplicated shard: %v", err)
	}
}

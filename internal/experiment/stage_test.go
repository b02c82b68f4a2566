package experiment

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// A stage reruns when its configuration changes, and reuses a record written under its
// legacy configuration, keeping that record's hash for the stages after it.
func TestStageLegacyConfiguration(t *testing.T) {
	out := t.TempDir()
	if err := os.MkdirAll(filepath.Join(out, "stages"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := &runner{ctx: context.Background(), cfg: Config{Out: out}, res: &Results{},
		log: Logger{Printf: func(string, ...any) {}}}
	runs := 0
	run := func(conf any, legacy ...any) string {
		var got int
		if err := r.stageCompat("s", conf, legacy, nil, &got, func() error { runs++; got = runs; return nil }); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(r.res.Stages[len(r.res.Stages)-1].Hash, "/", got)
	}
	old := run(map[string]any{"upstream": "abc"}) // written by an earlier build
	if runs != 1 {
		t.Fatalf("%d runs", runs)
	}
	if got := run(map[string]any{"data": "d"}, map[string]any{"upstream": "abc"}); got != old || runs != 1 {
		t.Errorf("under the legacy configuration: %s after %d runs, want the record %s reused", got, runs, old)
	}
	// The record now also answers to the new configuration alone (as in a sweep folder that
	// links it, whose legacy configuration differs), still under its old hash.
	if got := run(map[string]any{"data": "d"}, map[string]any{"upstream": "other folder"}); got != old || runs != 1 {
		t.Errorf("a linked legacy record: %s after %d runs, want the record %s reused", got, runs, old)
	}
	if got := run(map[string]any{"data": "e"}, map[string]any{"upstream": "xyz"}); got == old || runs != 2 {
		t.Errorf("with another configuration: %s after %d runs, want a rerun", got, runs)
	}
	if got := run(map[string]any{"data": "e"}); runs != 2 || got != fmt.Sprint(hashOf(map[string]any{"data": "e"}), "/2") {
		t.Errorf("under the new configuration: %s after %d runs, want its record reused", got, runs)
	}
	// Builds that drop a field, one after the other: the first's legacy configuration is
	// the record's hash, the second's the hash the first noted in it (its Current); the record
	// is reused under its first hash both times.
	if got := run(map[string]any{"data": "f"}, map[string]any{"upstream": "zzz"}, map[string]any{"data": "e"}); runs != 2 || got != fmt.Sprint(hashOf(map[string]any{"data": "e"}), "/2") {
		t.Errorf("a legacy configuration among several: %s after %d runs, want its record reused", got, runs)
	}
	if got := run(map[string]any{"data": "g"}, map[string]any{"data": "f"}); runs != 2 {
		t.Errorf("a legacy configuration noted in the record: %s after %d runs, want its record reused", got, runs)
	}
}

// The data stage names a data folder by its absolute path: the same folder named relatively,
// from another directory, is the same configuration (a different one would discard every stage
// after it). Names that are no path stay as given.
func TestDataKeyIsAbsolute(t *testing.T) {
	root := t.TempDir()
	set := filepath.Join(root, "shared", "cifar10")
	work := filepath.Join(root, "work")
	for _, d := range []string{set, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(work)
	if got := dataKey("../shared/cifar10"); got != set {
		t.Errorf("relative: %q, want %q", got, set)
	}
	if got := dataKey(set); got != set {
		t.Errorf("absolute: %q, want %q", got, set)
	}
	if got := dataKey("synthetic:200"); got != "synthetic:200" {
		t.Errorf("synthetic: %q", got)
	}
}

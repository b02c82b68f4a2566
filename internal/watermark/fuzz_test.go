package watermark

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoadKey feeds arbitrary key files, placed in a real key folder, to the loader: it must
// never panic, and whatever it accepts reads only files inside the key's folder.
func FuzzLoadKey(f *testing.F) {
	root, st := makeFolder(f)
	out := filepath.Join(f.TempDir(), "marked")
	if _, err := Embed(context.Background(), Options{Data: root, StyleImage: st, Out: out, Rate: 0.2, Seed: 3, Style: fastStyle()}); err != nil {
		f.Fatal(err)
	}
	if _, err := AddControls(context.Background(), filepath.Join(out, "key.json"), ControlOptions{Count: 1, Style: fastStyle()}); err != nil {
		f.Fatal(err)
	}
	good, err := os.ReadFile(filepath.Join(out, "key.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(strings.Replace(string(good), `"label": 0`, `"label": 99`, 1)))
	f.Add([]byte(strings.Replace(string(good), `"styled": "train/`, `"styled": "../../train/`, 1)))
	f.Add([]byte(`{"format":"move-watermark-key/2","classes":["a"],"samples":[{"source":"/dev/zero","styled":"x","class":"a"}]}`))
	real, _ := filepath.EvalSymlinks(out)
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(out, "fuzz-key.json")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		k, pairs, err := LoadKeyPairs(p, 4)
		if err != nil {
			return
		}
		for i := range min(len(pairs), len(k.Samples)) {
			if k.Format != FormatV2 {
				continue
			}
			for _, rel := range []string{k.Samples[i].Source, k.Samples[i].Styled} {
				q, err := k.Path(rel)
				if err != nil {
					t.Fatalf("sample %d was read although %s does not resolve: %v", i, rel, err)
				}
				if !strings.HasPrefix(q, real+string(filepath.Separator)) {
					t.Fatalf("sample %d read %s, outside the key's folder %s", i, q, real)
				}
			}
		}
	})
}

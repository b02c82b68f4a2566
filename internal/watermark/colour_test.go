package watermark

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"move/internal/data"
)

// A colour style embedded into grey images adds colour no clean image has: the key's colour
// says so and warns; the same style on colour images, or with the originals' colours kept,
// does not warn.
func TestKeyColourWarnsOnGreyData(t *testing.T) {
	root, st := makeFolder(t)
	grey := filepath.Join(t.TempDir(), "grey")
	for _, split := range []string{"train", "test"} {
		s, err := data.LoadFolder(filepath.Join(root, split), data.FolderOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for i := range s.Len() {
			pix := append([]uint8(nil), s.Image(i)...)
			for j := 0; j < len(pix); j += 3 {
				y := uint8((299*int(pix[j]) + 587*int(pix[j+1]) + 114*int(pix[j+2])) / 1000)
				pix[j], pix[j+1], pix[j+2] = y, y, y
			}
			d := filepath.Join(grey, split, s.Classes[s.Labels[i]])
			os.MkdirAll(d, 0o755)
			if err := data.WritePNG(filepath.Join(d, filepath.Base(s.Paths[i])), pix, s.H, s.W, false); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, c := range []struct {
		name, data string
		keep, warn bool
	}{{"grey data", grey, false, true}, {"colour data", root, false, false}, {"grey data, colours kept", grey, true, false}} {
		o := fastStyle()
		o.KeepColors = c.keep
		key, err := Embed(context.Background(), Options{Data: c.data, StyleImage: st, Out: filepath.Join(t.TempDir(), "marked"), Rate: 0.2, Seed: 3, Style: o})
		if err != nil {
			t.Fatal(err)
		}
		pairs, err := LoadPairs(key, 0)
		if err != nil {
			t.Fatal(err)
		}
		col := PairsColour(pairs)
		w := col.Warning()
		if col.Samples != len(key.Samples) || (w != "") != c.warn || (c.warn && !strings.Contains(w, "grey")) {
			t.Errorf("%s: colour %+v, warning %q (want one: %v)", c.name, col, w, c.warn)
		}
		if c.data == grey && col.Original >= 1 {
			t.Errorf("%s: grey originals have chroma %.2f", c.name, col.Original)
		}
	}
}

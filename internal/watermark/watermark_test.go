package watermark

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"move/internal/atomicfile"
	"move/internal/data"
	"move/internal/style"
)

// makeFolder writes a small image folder root with train/ and test/ splits and a style image.
func makeFolder(t testing.TB) (root, styleImg string) {
	t.Helper()
	root = filepath.Join(t.TempDir(), "clean")
	for split, seed := range map[string]uint64{"train": 1, "test": 2} {
		s := data.Synthetic(20, 2, 16, seed)
		for i := range s.Len() {
			d := filepath.Join(root, split, s.Classes[s.Labels[i]])
			os.MkdirAll(d, 0o755)
			if err := data.WritePNG(filepath.Join(d, "img"+string(rune('a'+i))+".png"), s.Image(i), 16, 16, false); err != nil {
				t.Fatal(err)
			}
		}
	}
	st := data.Synthetic(1, 1, 48, 9)
	styleImg = filepath.Join(t.TempDir(), "paint.png")
	data.WritePNG(styleImg, st.Image(0), 48, 48, false)
	return root, styleImg
}

func fastStyle() style.Options {
	o := style.Default()
	o.Steps, o.StyleSize = 5, 32
	return o
}

func TestEmbed(t *testing.T) {
	root, st := makeFolder(t)
	out := filepath.Join(t.TempDir(), "marked")
	key, err := Embed(context.Background(), Options{Data: root, StyleImage: st, Out: out, Rate: 0.2, Seed: 3, Style: fastStyle()})
	if err != nil {
		t.Fatal(err)
	}
	// 20 training images in 2 classes of 10: 2 per class styled.
	if len(key.Samples) != 4 || key.Split != "train" || len(key.Style.SHA256) != 64 {
		t.Fatalf("key: %d samples, split %q, style %+v", len(key.Samples), key.Split, key.Style)
	}
	k2, err := LoadKey(filepath.Join(out, "key.json"))
	if err != nil || len(k2.Samples) != 4 {
		t.Fatalf("reloaded key: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, key.Style.File)); err != nil {
		t.Fatal("style image copy missing")
	}
	tr, err := data.LoadFolder(filepath.Join(out, "train"), data.FolderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Len() != 20 {
		t.Fatalf("watermarked train split has %d images, want 20", tr.Len())
	}
	te, _ := data.LoadFolder(filepath.Join(out, "test"), data.FolderOptions{})
	if te.Len() != 20 {
		t.Fatalf("test split has %d images, want 20 (copied unchanged)", te.Len())
	}
	for i, s := range key.Samples {
		// The key keeps a byte-identical copy of the original inside its folder.
		want, err := os.ReadFile(filepath.Join(root, s.Origin))
		if err != nil {
			t.Fatalf("origin %s is not in the input: %v", s.Origin, err)
		}
		op, err := key.Original(i)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(op); string(got) != string(want) || !strings.HasPrefix(s.Source, "originals/") {
			t.Fatalf("the key's copy %s of %s differs from the original", s.Source, s.Origin)
		}
		if _, err := os.Stat(filepath.Join(out, s.Styled)); err != nil {
			t.Fatalf("styled file %s missing", s.Styled)
		}
	}
	if key.Format != FormatV2 || key.Style.Origin != filepath.Base(st) {
		t.Fatalf("format %q, style origin %q", key.Format, key.Style.Origin)
	}
	// Same seed, same selection; an existing output is refused without force.
	if _, err := Embed(context.Background(), Options{Data: root, StyleImage: st, Out: out, Rate: 0.2, Seed: 3, Style: fastStyle()}); !errors.Is(err, atomicfile.ErrExists) {
		t.Fatalf("second embed without force: %v", err)
	}
	k3, err := Embed(context.Background(), Options{Data: root, StyleImage: st, Out: out, Rate: 0.2, Seed: 3, Style: fastStyle(), Force: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range k3.Samples {
		if k3.Samples[i].Source != key.Samples[i].Source {
			t.Fatal("same seed chose different samples")
		}
	}
}

func TestEmbedBadInputs(t *testing.T) {
	root, st := makeFolder(t)
	out := filepath.Join(t.TempDir(), "m")
	cases := map[string]Options{
		"rate 0":        {Data: root, StyleImage: st, Out: out, Rate: 0},
		"rate 1.5":      {Data: root, StyleImage: st, Out: out, Rate: 1.5},
		"missing style": {Data: root, StyleImage: filepath.Join(root, "nope.jpg"), Out: out, Rate: 0.1},
		"out inside in": {Data: root, StyleImage: st, Out: filepath.Join(root, "marked"), Rate: 0.1},
		"missing data":  {Data: filepath.Join(root, "nope"), StyleImage: st, Out: out, Rate: 0.1},
	}
	for name, o := range cases {
		o.Style = fastStyle()
		if _, err := Embed(context.Background(), o); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("%s: left an output behind", name)
		}
	}
	// An unreadable image among those to style: error names it, nothing is left behind.
	bad := filepath.Join(root, "train", "class00", "zz.png")
	os.WriteFile(bad, []byte("garbage"), 0o644)
	_, err := Embed(context.Background(), Options{Data: root, StyleImage: st, Out: out, Rate: 1, Style: fastStyle()})
	if err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("unreadable image: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Dir(out)); len(ents) != 0 {
		t.Fatalf("left behind: %v", ents)
	}
}

package watermark

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"move/internal/data"
	"move/internal/style"
)

func TestNewPatchAverages(t *testing.T) {
	// A 4x4 image whose red channel is 0..15 row by row, green constant 7, blue 255 - red.
	pix := make([]uint8, 4*4*3)
	for i := range 16 {
		pix[i*3], pix[i*3+1], pix[i*3+2] = uint8(i), 7, uint8(255-i)
	}
	p, err := NewPatch(pix, 4, 4, 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	// Top-left 2x2 block holds 0,1,4,5: mean 2.5, rounded half up to 3; top-right 2,3,6,7: 4.5 -> 5;
	// bottom-left 8,9,12,13: 10.5 -> 11; bottom-right 10,11,14,15: 12.5 -> 13.
	wantR := []uint8{3, 5, 11, 13}
	for i, r := range wantR {
		if p.Pixels[i*3] != r || p.Pixels[i*3+1] != 7 || p.Pixels[i*3+2] != 255-r+1 {
			t.Errorf("patch pixel %d = %v, want (%d, 7, %d)", i, p.Pixels[i*3:i*3+3], r, 255-r+1)
		}
	}
	// Growing repeats the nearest pixel.
	g, err := NewPatch([]uint8{10, 20, 30}, 1, 1, 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 9 {
		if !bytes.Equal(g.Pixels[i*3:i*3+3], []uint8{10, 20, 30}) {
			t.Fatalf("grown patch pixel %d = %v", i, g.Pixels[i*3:i*3+3])
		}
	}
	if _, err := NewPatch(pix, 4, 4, 0, 1); err == nil {
		t.Error("a patch of 0 pixels was accepted")
	}
	if _, err := NewPatch(pix[:10], 4, 4, 2, 1); err == nil {
		t.Error("a short image was accepted")
	}
}

func TestStampPlacesThePatchOnly(t *testing.T) {
	const h, w = 10, 12
	img := make([]uint8, h*w*3)
	for i := range img {
		img[i] = uint8(i % 251)
	}
	p := WhitePatch(32)
	if p.Size != 3 || p.Margin != 1 {
		t.Fatalf("white patch for 32-pixel images: size %d margin %d, want BadNets' 3 and 1", p.Size, p.Margin)
	}
	out, err := p.Stamp(img, h, w)
	if err != nil {
		t.Fatal(err)
	}
	changed := 0
	for y := range h {
		for x := range w {
			in := y >= h-4 && y < h-1 && x >= w-4 && x < w-1
			for c := range 3 {
				o := (y*w+x)*3 + c
				switch {
				case in && out[o] != 255:
					t.Fatalf("pixel (%d,%d) inside the patch is %d", x, y, out[o])
				case !in && out[o] != img[o]:
					t.Fatalf("pixel (%d,%d) outside the patch changed", x, y)
				}
				if out[o] != img[o] {
					changed++
				}
			}
		}
	}
	if changed == 0 {
		t.Fatal("stamping changed nothing")
	}
	if img[((h-2)*w+w-2)*3] == 255 {
		t.Fatal("test image already white under the patch")
	}
	if _, err := p.Stamp(img[:3*3*3], 3, 3); err == nil {
		t.Error("a patch larger than the image was accepted")
	}
}

func TestPatchPairsStampOwnerAndControlPatches(t *testing.T) {
	orig := make([]uint8, 8*8*3)
	for i := range orig {
		orig[i] = 77
	}
	pairs := []Pair{{Orig: orig, Styled: []uint8{1}, Controls: [][]uint8{{2}, {3}}, H: 8, W: 8, Label: 1}, {Orig: orig, Styled: []uint8{1}, H: 8, W: 8}}
	p, black := WhitePatch(8), SolidPatch(8, 0)
	got, err := PatchPairs(pairs, p, black)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := p.Stamp(orig, 8, 8)
	wantC, _ := black.Stamp(orig, 8, 8)
	if !bytes.Equal(got[0].Styled, want) || got[0].Label != 1 || !bytes.Equal(got[0].Orig, orig) {
		t.Fatalf("patched pair: %+v", got[0])
	}
	if len(got[0].Controls) != 2 || !bytes.Equal(got[0].Controls[0], wantC) || !bytes.Equal(got[0].Controls[1], wantC) || len(got[1].Controls) != 0 {
		t.Fatalf("control versions: %d and %d", len(got[0].Controls), len(got[1].Controls))
	}
	if len(pairs[0].Styled) != 1 || pairs[0].Controls[0][0] != 2 {
		t.Fatal("PatchPairs changed its input")
	}
	if _, err := PatchPairs(pairs, p); err == nil {
		t.Error("pairs with controls and no control patch were accepted")
	}
}

func TestEmbedPatch(t *testing.T) {
	root, st := makeFolder(t)
	out := filepath.Join(t.TempDir(), "marked")
	key, err := Embed(context.Background(), Options{Data: root, StyleImage: st, Out: out, Rate: 0.2, Seed: 3, Patch: 4})
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadKey(filepath.Join(out, "key.json"))
	if err != nil {
		t.Fatal(err)
	}
	if k2.Method != MethodPatch || k2.Patch == nil || k2.Patch.Size != 4 || k2.Patch.Margin != 1 || len(k2.Samples) != len(key.Samples) {
		t.Fatalf("key: method %q patch %+v", k2.Method, k2.Patch)
	}
	sp, sh, sw, err := data.ReadImage(st, 0)
	if err != nil {
		t.Fatal(err)
	}
	patch, err := NewPatch(sp, sh, sw, 4, 1)
	if err != nil {
		t.Fatal(err)
	}
	pairs, err := LoadPairs(k2, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, q := range pairs {
		want, err := patch.Stamp(q.Orig, q.H, q.W)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(q.Styled, want) {
			t.Fatalf("sample %d: the transformed image is not its original with the patch", i)
		}
	}
	// Another size is another key: the patch is part of the embedding's settings.
	out2 := filepath.Join(t.TempDir(), "marked2")
	k3, err := Embed(context.Background(), Options{Data: root, StyleImage: st, Out: out2, Rate: 0.2, Seed: 3, Patch: 20})
	if err == nil {
		t.Fatalf("a 20-pixel patch on 16-pixel images was accepted (%d samples)", len(k3.Samples))
	}
}

func TestEmbedFeedForward(t *testing.T) {
	root, st := makeFolder(t)
	out := filepath.Join(t.TempDir(), "marked")
	feed := style.DefaultFeed()
	feed.Width, feed.Blocks, feed.Steps, feed.Batch, feed.Crop = 4, 1, 5, 2, 16
	steps := 0
	key, err := Embed(context.Background(), Options{Data: root, StyleImage: st, Out: out, Rate: 0.2, Seed: 3, Style: fastStyle(),
		FeedForward: true, Feed: feed, FeedImages: 3, StylizerProgress: func(step, total int, _ float64, _ time.Duration) { steps = total }})
	if err != nil {
		t.Fatal(err)
	}
	if steps != 5 {
		t.Errorf("stylizer progress reported %d steps, want 5", steps)
	}
	k, err := LoadKey(filepath.Join(out, "key.json"))
	if err != nil {
		t.Fatal(err)
	}
	if k.Method != MethodFeedForward || k.Stylizer != StylizerFile || k.Feed == nil || *k.Feed != feed || len(k.Samples) != len(key.Samples) {
		t.Fatalf("key: method %q, stylizer %q, feed %+v", k.Method, k.Stylizer, k.Feed)
	}
	f, err := k.Path(k.Stylizer)
	if err != nil {
		t.Fatal(err)
	}
	s, err := style.LoadStylizer(f)
	if err != nil {
		t.Fatal(err)
	}
	pairs, err := LoadPairs(k, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, q := range pairs {
		if want := s.Apply([][]uint8{q.Orig}, q.H, q.W)[0]; !bytes.Equal(q.Styled, want) {
			t.Fatalf("sample %d is not the kept stylizer's output", i)
		}
	}
	// Its controls are styled the same way, each by a stylizer of its own, kept beside it.
	kc, err := AddControls(context.Background(), filepath.Join(out, "key.json"), ControlOptions{Count: 1, Seed: 1, Style: fastStyle()})
	if err != nil {
		t.Fatal(err)
	}
	c := kc.Controls[0]
	cf, err := kc.Path(c.Stylizer)
	if c.Stylizer == "" || err != nil {
		t.Fatalf("control %q: stylizer %q: %v", c.Name, c.Stylizer, err)
	}
	cs, err := style.LoadStylizer(cf)
	if err != nil {
		t.Fatal(err)
	}
	cpairs, err := LoadPairs(kc, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, q := range cpairs {
		if len(q.Controls) == 1 && !bytes.Equal(q.Controls[0], cs.Apply([][]uint8{q.Orig}, q.H, q.W)[0]) {
			t.Fatalf("sample %d's control is not its stylizer's output", i)
		}
	}
	// A feed-forward key is refused with the patch and with shards.
	for _, o := range []Options{{Patch: 3}, {Shards: 2}} {
		o.Data, o.StyleImage, o.Out, o.Rate, o.Style, o.FeedForward, o.Feed = root, st, filepath.Join(t.TempDir(), "x"), 0.2, fastStyle(), true, feed
		if _, err := Embed(context.Background(), o); err == nil {
			t.Errorf("feed-forward with %+v was accepted", o)
		}
	}
}

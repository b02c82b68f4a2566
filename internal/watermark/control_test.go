package watermark

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"move/internal/atomicfile"
	"move/internal/style"
)

func TestAddControls(t *testing.T) {
	root, st := makeFolder(t)
	out := filepath.Join(t.TempDir(), "marked")
	key, err := Embed(context.Background(), Options{Data: root, StyleImage: st, Out: out, Rate: 0.5, Seed: 3, Style: fastStyle()})
	if err != nil {
		t.Fatal(err)
	}
	kp := filepath.Join(out, "key.json")
	// 10 key samples; controls for 6 of them, two procedural styles.
	k, err := AddControls(context.Background(), kp, ControlOptions{Count: 2, Samples: 6, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(k.Controls) != 2 || len(k.Controls[0].Samples) != 6 || k.Controls[0].Style.SHA256 == k.Controls[1].Style.SHA256 {
		t.Fatalf("controls: %+v", k.Controls)
	}
	pairs, err := LoadPairs(k, 0)
	if err != nil {
		t.Fatal(err)
	}
	with := 0
	for i, p := range pairs {
		switch len(p.Controls) {
		case 2:
			with++
			if bytes.Equal(p.Controls[0], p.Controls[1]) || bytes.Equal(p.Controls[0], p.Styled) || bytes.Equal(p.Controls[0], p.Orig) {
				t.Errorf("sample %d: control versions equal each other, the styled image or the original", i)
			}
			if len(p.Controls[0]) != len(p.Orig) {
				t.Errorf("sample %d: control image of %d bytes, original %d", i, len(p.Controls[0]), len(p.Orig))
			}
		case 0:
		default:
			t.Errorf("sample %d has %d control versions", i, len(p.Controls))
		}
	}
	if with != 6 || len(pairs) != len(key.Samples) {
		t.Fatalf("%d of %d samples have controls, want 6 of %d", with, len(pairs), len(key.Samples))
	}
	// The key on disk lists them; adding again needs Force.
	k2, err := LoadKey(kp)
	if err != nil || len(k2.Controls) != 2 {
		t.Fatalf("reloaded key: %v, %d controls", err, len(k2.Controls))
	}
	if _, err := AddControls(context.Background(), kp, ControlOptions{Count: 1}); !errors.Is(err, atomicfile.ErrExists) {
		t.Fatalf("adding controls twice without force: %v", err)
	}
	if k3, err := AddControls(context.Background(), kp, ControlOptions{Count: 1, Force: true}); err != nil || len(k3.Controls) != 1 {
		t.Fatalf("replacing controls: %v", err)
	}
	// The owner's style is no control.
	_, err = AddControls(context.Background(), kp, ControlOptions{Styles: []string{st}, Force: true})
	if err == nil || !strings.Contains(err.Error(), "owner's style") {
		t.Fatalf("owner's style as a control: %v", err)
	}
	// A key whose control list names a sample it does not have is refused when read.
	k2.Controls[0].Samples[0] = 999
	if _, err := LoadPairs(k2, 0); err == nil || !strings.Contains(err.Error(), "sample 999") {
		t.Fatalf("bad control sample: %v", err)
	}
}

// Procedural control styles are deterministic and differ from each other.
func TestControlStyles(t *testing.T) {
	a, h, w := style.Control(0)
	b, _, _ := style.Control(0)
	c, _, _ := style.Control(1)
	if h != style.ControlSide || w != style.ControlSide || len(a) != h*w*3 {
		t.Fatalf("control style %dx%d, %d bytes", w, h, len(a))
	}
	if !bytes.Equal(a, b) {
		t.Fatal("control style 0 differs between calls")
	}
	diff := 0
	for i := range a {
		if a[i] != c[i] {
			diff++
		}
	}
	if diff < len(a)/2 {
		t.Fatalf("control styles 0 and 1 share %d of %d bytes", len(a)-diff, len(a))
	}
}

package style

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"move/internal/data"
	"move/internal/modelfile"
	"move/internal/nn"
)

func smallFeed() FeedOptions {
	f := DefaultFeed()
	f.Width, f.Blocks, f.Steps, f.Batch, f.Crop = 8, 1, 150, 4, 16
	return f
}

func TestStylizerStartsAsTheIdentity(t *testing.T) {
	set := data.Synthetic(2, 2, 16, 3)
	s := newStylizer(smallFeed(), Default())
	x := nn.Const(toTensor([][]uint8{set.Image(0), set.Image(1)}, 16, 16))
	y := s.Forward(nil, x)
	for i, v := range y.Data() {
		if v != x.Data()[i] {
			t.Fatalf("untrained stylizer changed value %d: %g -> %g", i, x.Data()[i], v)
		}
	}
}

// A trained stylizer styles unseen images towards the style with one forward pass (the mean
// style distance at least halved, as move embed --check asks of per-image optimisation); training is reproducible from its seed, and the saved file styles the same.
func TestStylizerLearnsTheStyle(t *testing.T) {
	st := stripes(64)
	opt := Default()
	opt.Median = false
	tr, err := New(st, 64, 64, opt)
	if err != nil {
		t.Fatal(err)
	}
	train := data.Synthetic(12, 4, 24, 1)
	var imgs []Image
	for i := range train.Len() {
		imgs = append(imgs, Image{Pix: train.Image(i), H: 24, W: 24})
	}
	steps := 0
	s, err := TrainStylizer(tr, imgs, smallFeed(), func(step int, loss float64, _ time.Duration) { steps = step })
	if err != nil {
		t.Fatal(err)
	}
	if steps != smallFeed().Steps {
		t.Errorf("progress reported %d steps, want %d", steps, smallFeed().Steps)
	}
	// Unseen images, of a size that is not a multiple of 4.
	test := data.Synthetic(4, 4, 30, 2)
	in := make([][]uint8, test.Len())
	for i := range in {
		in[i] = test.Image(i)
	}
	out := s.Apply(in, 30, 30)
	m, err := NewMeter(st, 64, 64, opt, 999)
	if err != nil {
		t.Fatal(err)
	}
	before, after := m.Distance(in, 30, 30), m.Distance(out, 30, 30)
	var mb, ma float64
	for i := range before {
		t.Logf("image %d: style distance %.4f -> %.4f", i, before[i], after[i])
		if len(out[i]) != 30*30*3 || after[i] >= before[i] {
			t.Errorf("image %d (%d bytes): style distance %.4f -> %.4f, want smaller", i, len(out[i]), before[i], after[i])
		}
		mb, ma = mb+before[i], ma+after[i]
	}
	if ma > mb/2 { // move embed --check's criterion (a)
		t.Errorf("mean style distance %.4f -> %.4f, want at most half", mb/4, ma/4)
	}
	again, err := TrainStylizer(tr, imgs, smallFeed(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if a2 := again.Apply(in, 30, 30); !bytes.Equal(a2[0], out[0]) {
		t.Error("the same seed trained another stylizer")
	}
	f := filepath.Join(t.TempDir(), "s.safetensors")
	if err := s.Save(f, false); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(f, false); err == nil {
		t.Error("Save replaced an existing file without overwrite")
	}
	l, err := LoadStylizer(f)
	if err != nil {
		t.Fatal(err)
	}
	if l.Params() != s.Params() || l.Feed != s.Feed {
		t.Fatalf("loaded stylizer: %d weights, %+v", l.Params(), l.Feed)
	}
	for i, p := range l.Apply(in, 30, 30) {
		if !bytes.Equal(p, out[i]) {
			t.Fatalf("the loaded stylizer styles image %d differently", i)
		}
	}
}

func TestStylizerBadInputs(t *testing.T) {
	tr, err := New(stripes(32), 32, 32, Default())
	if err != nil {
		t.Fatal(err)
	}
	small := []Image{{Pix: make([]uint8, 7*9*3), H: 7, W: 9}}
	if _, err := TrainStylizer(tr, small, smallFeed(), nil); err == nil || !strings.Contains(err.Error(), "at least 8 pixels") {
		t.Errorf("images smaller than the crop: %v", err)
	}
	bad := smallFeed()
	bad.Crop = 18
	if _, err := TrainStylizer(tr, small, bad, nil); err == nil || !strings.Contains(err.Error(), "multiple of 4") {
		t.Errorf("crop of 18: %v", err)
	}
	f := filepath.Join(t.TempDir(), "not.safetensors")
	if err := modelfile.SaveTensors(f, newStylizer(smallFeed(), Default()).store.Map(), map[string]string{"format": "move-model/1"}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadStylizer(f); err == nil || !strings.Contains(err.Error(), "not a stylizer") {
		t.Errorf("another format: %v", err)
	}
	if _, err := LoadStylizer(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Error("a missing file loaded")
	}
	// Images smaller than the crop shrink it (Fashion-MNIST's 28 pixels: crops of 28).
	feed := smallFeed()
	feed.Steps = 2
	mnist := []Image{{Pix: make([]uint8, 28*28*3), H: 28, W: 28}}
	feed.Crop = 32
	if _, err := TrainStylizer(tr, mnist, feed, nil); err != nil {
		t.Errorf("28-pixel images with 32-pixel crops: %v", err)
	}
}

package data

import (
	"bytes"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeSetAsFolder(t *testing.T, s *Set, dir string) {
	t.Helper()
	for i := range s.Len() {
		d := filepath.Join(dir, s.Classes[s.Labels[i]])
		os.MkdirAll(d, 0o755)
		if err := WritePNG(filepath.Join(d, strings.Repeat("0", 3)+string(rune('a'+i%26))+itoa(i)+".png"), s.Image(i), s.H, s.W, false); err != nil {
			t.Fatal(err)
		}
	}
}

func itoa(i int) string {
	return string([]byte{byte('0' + i/100%10), byte('0' + i/10%10), byte('0' + i%10)})
}

func TestFolderRoundTrip(t *testing.T) {
	s := Synthetic(30, 3, 8, 1)
	dir := t.TempDir()
	writeSetAsFolder(t, s, dir)
	got, err := LoadFolder(dir, FolderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Len() != 30 || got.H != 8 || len(got.Classes) != 3 || got.Classes[1] != "class01" {
		t.Fatalf("loaded %d images %dx%d classes %v", got.Len(), got.H, got.W, got.Classes)
	}
	// PNG is lossless: every image must come back byte for byte (order within a class is by name).
	want := map[string]int{}
	for i := range s.Len() {
		want[string(s.Image(i))] = s.Labels[i]
	}
	for i := range got.Len() {
		l, ok := want[string(got.Image(i))]
		if !ok || l != got.Labels[i] {
			t.Fatalf("image %d (%s) not found with its label", i, got.Paths[i])
		}
	}
	sub, err := LoadFolder(dir, FolderOptions{PerClass: 2, Size: 16})
	if err != nil || sub.Len() != 6 || sub.H != 16 {
		t.Fatalf("per-class+resize: %v, %d images, %d px", err, sub.Len(), sub.H)
	}
}

func TestFolderErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadFolder(dir, FolderOptions{}); err == nil || !strings.Contains(err.Error(), "no class subfolders") {
		t.Fatalf("empty folder: %v", err)
	}
	s := Synthetic(4, 2, 8, 1)
	writeSetAsFolder(t, s, dir)
	bad := filepath.Join(dir, "class00", "zzz.jpg")
	os.WriteFile(bad, []byte("not a jpeg"), 0o644)
	_, err := LoadFolder(dir, FolderOptions{})
	if err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("corrupt file: error %v does not name %s", err, bad)
	}
	os.Remove(bad)
	big := Synthetic(1, 1, 12, 2)
	odd := filepath.Join(dir, "class01", "zzz.png")
	WritePNG(odd, big.Image(0), 12, 12, false)
	if _, err := LoadFolder(dir, FolderOptions{}); err == nil || !strings.Contains(err.Error(), odd) {
		t.Fatalf("size mismatch: error %v does not name %s", err, odd)
	}
	if _, err := LoadFolder(dir, FolderOptions{Size: 8}); err != nil {
		t.Fatalf("with resizing, sizes may differ: %v", err)
	}
}

func TestCIFAR10Binary(t *testing.T) {
	var buf bytes.Buffer
	rec := make([]byte, cifarRecord)
	for k := range 3 {
		rec[0] = byte(k + 1)
		for i := range 3072 {
			rec[1+i] = byte(i / 1024 * 100) // red plane 0, green 100, blue 200
		}
		rec[1+5] = byte(k) // red of pixel 5
		buf.Write(rec)
	}
	s := &Set{Classes: CIFAR10Classes, H: 32, W: 32}
	if err := ReadCIFAR10Binary(bytes.NewReader(buf.Bytes()), "mem", s); err != nil {
		t.Fatal(err)
	}
	if s.Len() != 3 || s.Labels[2] != 3 {
		t.Fatalf("%d records, labels %v", s.Len(), s.Labels)
	}
	img := s.Image(2)
	if img[0] != 0 || img[1] != 100 || img[2] != 200 || img[5*3] != 2 {
		t.Fatalf("planes not interleaved: %v", img[:18])
	}
	trunc := &Set{Classes: CIFAR10Classes, H: 32, W: 32}
	err := ReadCIFAR10Binary(bytes.NewReader(buf.Bytes()[:cifarRecord+10]), "cut.bin", trunc)
	if err == nil || !strings.Contains(err.Error(), "cut.bin: record 1 is truncated") {
		t.Fatalf("truncated file: %v", err)
	}
}

func TestBatchNormalisesAndAugments(t *testing.T) {
	s := Synthetic(2, 2, 8, 3)
	norm := Normalization{Mean: [3]float32{0.5, 0.5, 0.5}, Std: [3]float32{0.25, 0.5, 1}}
	x, y := Batch(s, []int{1, 0}, norm, Augment{}, nil)
	if y[0] != s.Labels[1] || x.Shape[0] != 2 || x.Shape[3] != 3 {
		t.Fatalf("labels %v shape %v", y, x.Shape)
	}
	p := s.Image(1)[3*9+1] // pixel (1,1), green
	if want := (float32(p)/255 - 0.5) / 0.5; x.Data[3*9+1] != want {
		t.Fatalf("normalised %g, want %g", x.Data[3*9+1], want)
	}
	// A flip-only augmentation either keeps the image or mirrors it exactly.
	rng := rand.New(rand.NewPCG(1, 1))
	plain, _ := Batch(s, []int{0}, norm, Augment{}, nil)
	flips := 0
	for range 20 {
		a, _ := Batch(s, []int{0}, norm, Augment{Flip: true}, rng)
		same, mirrored := true, true
		for yy := range 8 {
			for xx := range 8 {
				for c := range 3 {
					v := a.Data[(yy*8+xx)*3+c]
					same = same && v == plain.Data[(yy*8+xx)*3+c]
					mirrored = mirrored && v == plain.Data[(yy*8+7-xx)*3+c]
				}
			}
		}
		if !same && !mirrored {
			t.Fatal("flip produced something else")
		}
		if mirrored && !same {
			flips++
		}
	}
	if flips == 0 || flips == 20 {
		t.Fatalf("%d of 20 batches flipped", flips)
	}
}

// Strong augmentation (colour jitter and blur) keeps pixels in [0, 1], leaves a grey image
// grey, and changes a textured one; the blur alone keeps a flat image flat and the mean of a
// periodic one.
func TestStrongAugment(t *testing.T) {
	s := Synthetic(4, 2, 16, 3)
	norm := Normalization{Mean: [3]float32{0.5, 0.4, 0.3}, Std: [3]float32{0.25, 0.2, 0.3}}
	rng := rand.New(rand.NewPCG(2, 2))
	plain, _ := Batch(s, []int{0, 1, 2, 3}, norm, Augment{}, nil)
	strongB, _ := Batch(s, []int{0, 1, 2, 3}, norm, Augment{Jitter: 0.4, Blur: 1.5}, rng)
	var change float64
	for i, v := range strongB.Data {
		c := i % 3
		px := v*norm.Std[c] + norm.Mean[c]
		if px < -1e-5 || px > 1+1e-5 {
			t.Fatalf("pixel %d is %g after jitter and blur, outside [0, 1]", i, px)
		}
		change += math.Abs(float64(v - plain.Data[i]))
	}
	if change/float64(len(plain.Data)) < 0.05 {
		t.Fatalf("strong augmentation changed the batch by %.4f per value", change/float64(len(plain.Data)))
	}
	// A grey image: jitter only scales it, saturation and contrast keep it grey.
	grey := &Set{Classes: []string{"a"}, H: 8, W: 8, Pixels: make([]uint8, 8*8*3), Labels: []int{0}}
	for i := range grey.Pixels {
		grey.Pixels[i] = 120
	}
	g, _ := Batch(grey, []int{0}, norm, Augment{Jitter: 0.4, Blur: 1.5}, rng)
	first := g.Data[0]*norm.Std[0] + norm.Mean[0]
	for i, v := range g.Data {
		c := i % 3
		if px := v*norm.Std[c] + norm.Mean[c]; math.Abs(float64(px-first)) > 1e-4 {
			t.Fatalf("a grey image became coloured or uneven: %g and %g", first, px)
		}
	}
	// Blur: stripes of period 2 average to their mean in the interior.
	img := make([]float32, 12*12*3)
	for i := range img {
		if (i/3)%2 == 0 {
			img[i] = 1
		}
	}
	GaussianBlur(img, 12, 12, 3)
	if v := img[(6*12+6)*3]; math.Abs(float64(v)-0.5) > 0.02 {
		t.Fatalf("blurred stripes: %g at the centre, want about 0.5", v)
	}
}

func TestSyntheticDeterministic(t *testing.T) {
	a, b, c := Synthetic(20, 4, 16, 5), Synthetic(20, 4, 16, 5), Synthetic(20, 4, 16, 6)
	if !bytes.Equal(a.Pixels, b.Pixels) {
		t.Fatal("same seed, different images")
	}
	if bytes.Equal(a.Pixels, c.Pixels) {
		t.Fatal("different seeds, same images")
	}
}

// A slice of the real CIFAR-10 folder, when ../shared is present.
func TestRealCIFARFolder(t *testing.T) {
	dir := "../../../shared/data/cifar10/test"
	if _, err := os.Stat(dir); err != nil {
		t.Skip("shared CIFAR-10 not present")
	}
	s, err := LoadFolder(dir, FolderOptions{PerClass: 5})
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 50 || s.H != 32 || len(s.Classes) != 10 || s.Classes[0] != "airplane" {
		t.Fatalf("%d images %dx%d classes %v", s.Len(), s.H, s.W, s.Classes)
	}
}

// TestResizeCrop checks torchvision's Resize(size) + CenterCrop(size) on a wide and a tall
// image whose pixel value is 6 times its column (or row): scaled by one half, pixel x of the
// scaled image samples source column 2x + 0.5, value 12x + 3; the crop of 10 from 20 starts at 5.
func TestResizeCrop(t *testing.T) {
	wide := make([]uint8, 20*40*3)
	tall := make([]uint8, 40*20*3)
	for y := range 20 {
		for x := range 40 {
			for c := range 3 {
				wide[(y*40+x)*3+c] = uint8(6 * x)
				tall[(x*20+y)*3+c] = uint8(6 * x) // row x, column y
			}
		}
	}
	w := ResizeCrop(wide, 20, 40, 10)
	h := ResizeCrop(tall, 40, 20, 10)
	for y := range 10 {
		for x := range 10 {
			if got, want := w[(y*10+x)*3], uint8(12*(x+5)+3); got != want {
				t.Fatalf("wide (%d,%d) = %d, want %d", x, y, got, want)
			}
			if got, want := h[(y*10+x)*3], uint8(12*(y+5)+3); got != want {
				t.Fatalf("tall (%d,%d) = %d, want %d", x, y, got, want)
			}
		}
	}
	// A square image is only scaled.
	sq := make([]uint8, 8*8*3)
	if got := ResizeCrop(sq, 8, 8, 4); len(got) != 4*4*3 {
		t.Fatalf("square: %d bytes", len(got))
	}
	// 10 x 23 to 4: scaled to 4 x int(4*23/10) = 4 x 9, and the margin of 5 starts the crop at
	// round(2.5) = 2, half to even as Python rounds (not 3).
	odd := make([]uint8, 10*23*3)
	for x := range 23 {
		for y := range 10 {
			odd[(y*23+x)*3] = uint8(10 * x)
		}
	}
	scaled := Resize(odd, 10, 23, 4, 9)
	if got := ResizeCrop(odd, 10, 23, 4); got[0] != scaled[2*3] || got[0] == scaled[3*3] {
		t.Errorf("the crop starts at value %d; the scaled row is %v", got[0], scaled[:9*3:9*3])
	}
}

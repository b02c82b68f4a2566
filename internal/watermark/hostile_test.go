package watermark

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"move/internal/data"
)

// A key folder is self-contained: moved elsewhere and read from another working directory,
// it still gives its pairs (issue 16, item 14).
func TestKeyIsPortable(t *testing.T) {
	root, st := makeFolder(t)
	out := filepath.Join(t.TempDir(), "marked")
	if _, err := Embed(context.Background(), Options{Data: root, StyleImage: st, Out: out, Rate: 0.2, Seed: 3, Style: fastStyle()}); err != nil {
		t.Fatal(err)
	}
	if _, err := AddControls(context.Background(), filepath.Join(out, "key.json"), ControlOptions{Count: 1, Style: fastStyle()}); err != nil {
		t.Fatal(err)
	}
	_, before, err := LoadKeyPairs(filepath.Join(out, "key.json"), 0)
	if err != nil {
		t.Fatal(err)
	}
	moved := filepath.Join(t.TempDir(), "archive", "marked")
	os.MkdirAll(filepath.Dir(moved), 0o755)
	if err := os.Rename(out, moved); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(root); err != nil { // the clean set is gone too
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	_, after, err := LoadKeyPairs(filepath.Join(moved, "key.json"), 0)
	if err != nil {
		t.Fatalf("the moved key: %v", err)
	}
	if len(after) != len(before) || len(after[0].Controls) != 1 {
		t.Fatalf("%d pairs after the move (%d controls), %d before", len(after), len(after[0].Controls), len(before))
	}
	for i := range after {
		if string(after[i].Orig) != string(before[i].Orig) || string(after[i].Styled) != string(before[i].Styled) {
			t.Fatalf("pair %d changed with the move", i)
		}
	}
	// The watermarked training split does not take the key's folders for classes.
	tr, err := data.LoadFolder(filepath.Join(moved, "train"), data.FolderOptions{})
	if err != nil || len(tr.Classes) != 2 {
		t.Fatalf("training split: %v classes, %v", tr.Classes, err)
	}
}

// A data set of class folders without splits: the key's originals and controls live in the
// same folder as the classes and must not become classes.
func TestKeyFoldersAreNotClasses(t *testing.T) {
	root, st := makeFolder(t)
	out := filepath.Join(t.TempDir(), "marked")
	if _, err := Embed(context.Background(), Options{Data: filepath.Join(root, "train"), StyleImage: st, Out: out, Rate: 0.2, Seed: 3, Style: fastStyle()}); err != nil {
		t.Fatal(err)
	}
	if _, err := AddControls(context.Background(), filepath.Join(out, "key.json"), ControlOptions{Count: 1, Style: fastStyle()}); err != nil {
		t.Fatal(err)
	}
	s, err := data.LoadFolder(out, data.FolderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(s.Classes, ",") != "class00,class01" || s.Len() != 20 {
		t.Fatalf("classes %v, %d images: the key's folders were read as classes", s.Classes, s.Len())
	}
}

// writeKey writes a key file made by mutating a valid one.
func writeKey(t *testing.T, dir string, k *Key) string {
	t.Helper()
	b, _ := json.Marshal(k)
	p := filepath.Join(dir, "key.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Malformed and hostile keys are refused with the reason, before anything is trained or read
// outside the key's folder (issue 16, item 5 and the /dev/zero case of item 2).
func TestHostileKeys(t *testing.T) {
	root, st := makeFolder(t)
	out := filepath.Join(t.TempDir(), "marked")
	good, err := Embed(context.Background(), Options{Data: root, StyleImage: st, Out: out, Rate: 0.2, Seed: 3, Style: fastStyle()})
	if err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(t.TempDir(), "secret.png")
	data.WritePNG(secret, make([]uint8, 16*16*3), 16, 16, false)
	os.Symlink(secret, filepath.Join(out, "link.png"))
	os.Symlink("/dev/zero", filepath.Join(out, "zero.png"))
	cases := []struct {
		name string
		edit func(k *Key)
		want string
	}{
		{"label 99", func(k *Key) { k.Samples[0].Label = 99 }, "sample 0 has label 99; the key has 2 classes"},
		{"label -1", func(k *Key) { k.Samples[0].Label = -1 }, "sample 0 has label -1"},
		{"wrong class", func(k *Key) { k.Samples[0].Class = "dog" }, `sample 0 is of class "dog"`},
		{"no classes", func(k *Key) { k.Classes = nil }, "lists no classes"},
		{"styled up", func(k *Key) { k.Samples[0].Styled = "../../../etc/passwd" }, "outside the key's folder"},
		{"styled absolute", func(k *Key) { k.Samples[0].Styled = "/etc/passwd" }, "outside the key's folder"},
		{"original up", func(k *Key) { k.Samples[0].Source = "../" + filepath.Base(filepath.Dir(secret)) + "/secret.png" }, "outside the key's folder"},
		{"symlink out", func(k *Key) { k.Samples[0].Styled = "link.png" }, "outside the key's folder"},
		{"dev zero", func(k *Key) { k.Samples[0].Styled = "zero.png" }, "outside the key's folder"},
		{"control up", func(k *Key) {
			k.Controls = []Control{{Name: "c", Samples: []int{0}, Files: []string{"../x.png"}}}
		}, "outside the key's folder"},
		{"format", func(k *Key) { k.Format = "move-watermark-key/9" }, "unknown key format"},
	}
	for _, c := range cases {
		k := *good
		k.Samples = append([]Sample(nil), good.Samples...)
		c.edit(&k)
		dir := t.TempDir()
		// Keys live in the watermarked folder; write the edited one there under another name.
		p := writeKey(t, dir, &k)
		kb, _ := os.ReadFile(p)
		kp := filepath.Join(out, "bad-key.json")
		os.WriteFile(kp, kb, 0o644)
		_, _, err := LoadKeyPairs(kp, 0)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
		}
	}
	// A regular file only, also for a format-1 key's originals: /dev/zero is refused.
	k := *good
	k.Format = FormatV1
	k.Samples = append([]Sample(nil), good.Samples...)
	k.Samples[0].Source = "/dev/zero"
	kb, _ := json.Marshal(&k)
	kp := filepath.Join(out, "v1-key.json")
	os.WriteFile(kp, kb, 0o644)
	if _, _, err := LoadKeyPairs(kp, 0); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a format-1 original at /dev/zero: %v", err)
	}
}

// The output may not be the input through a symbolic link (issue 16, item 4): embed --force
// would replace the clean set with the watermarked copy.
func TestEmbedRefusesOutputThroughLink(t *testing.T) {
	root, st := makeFolder(t)
	parent := filepath.Dir(root)
	if err := os.Symlink(".", filepath.Join(parent, "up")); err != nil {
		t.Fatal(err)
	}
	t.Chdir(parent)
	_, err := Embed(context.Background(), Options{Data: filepath.Join("up", "clean"), StyleImage: st, Out: "clean", Rate: 0.2, Seed: 3, Style: fastStyle(), Force: true})
	if err == nil || !strings.Contains(err.Error(), "inside") {
		t.Fatalf("output = input through a link: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "key.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("the clean set was replaced")
	}
}

// An interrupted embed leaves its partial folder, and the same command resumes from it: the
// images already styled are kept, and the result is the uninterrupted run's (issue 16, item 11).
func TestEmbedResumes(t *testing.T) {
	root := filepath.Join(t.TempDir(), "clean")
	s := data.Synthetic(300, 2, 8, 4)
	if err := data.WriteFolder(s, filepath.Join(root, "train")); err != nil {
		t.Fatal(err)
	}
	_, st := makeFolder(t)
	opts := func(out string) Options {
		return Options{Data: root, StyleImage: st, Out: out, Rate: 0.5, Seed: 3, Style: fastStyle()}
	}
	whole, err := Embed(context.Background(), opts(filepath.Join(t.TempDir(), "whole")))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "m")
	ctx, cancel := context.WithCancel(context.Background())
	o := opts(out)
	o.Progress = func(done, total int, _ time.Duration) { cancel() } // after the first chunk of 64
	if _, err := Embed(ctx, o); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted embed: %v", err)
	}
	partial := filepath.Join(filepath.Dir(out), ".m.partial")
	if _, err := os.Stat(partial); err != nil {
		t.Fatalf("no partial folder after the interruption: %v", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("the output appeared although the run was interrupted")
	}
	// The resumed run's progress counts only what it styles itself, so its rate and ETA are
	// its own.
	ro := opts(out)
	var seen [][2]int
	ro.Progress = func(done, total int, _ time.Duration) { seen = append(seen, [2]int{done, total}) }
	k, err := Embed(context.Background(), ro)
	if err != nil {
		t.Fatal(err)
	}
	if want := len(whole.Samples) - 64; len(seen) == 0 || seen[0][1] != want || seen[len(seen)-1] != [2]int{want, want} || seen[0][0] > 64 {
		t.Fatalf("the resumed run reported progress %v, want counts out of the %d images it styles", seen, want)
	}
	if k.Resumed() != 64 {
		t.Fatalf("resumed %d styled images, want the 64 of the first chunk", k.Resumed())
	}
	if _, err := os.Stat(partial); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("the partial folder is left after a finished run")
	}
	if st, err := os.Stat(out); err != nil || st.Mode().Perm() != 0o755 {
		t.Fatalf("output mode %v (%v), want 0755", st.Mode().Perm(), err)
	}
	if len(k.Samples) != len(whole.Samples) {
		t.Fatalf("%d samples resumed, %d uninterrupted", len(k.Samples), len(whole.Samples))
	}
	for i := range k.Samples {
		a, _ := os.ReadFile(filepath.Join(out, k.Samples[i].Styled))
		b, _ := os.ReadFile(filepath.Join(whole.dir, whole.Samples[i].Styled))
		if string(a) != string(b) {
			t.Fatalf("styled image %s differs from the uninterrupted run's", k.Samples[i].Styled)
		}
	}
	// Other settings do not resume: the partial folder of another rate starts afresh.
	o = opts(filepath.Join(filepath.Dir(out), "n"))
	ctx, cancel = context.WithCancel(context.Background())
	o.Progress = func(int, int, time.Duration) { cancel() }
	Embed(ctx, o)
	o2 := opts(filepath.Join(filepath.Dir(out), "n"))
	o2.Rate = 0.4
	if k, err := Embed(context.Background(), o2); err != nil || k.Resumed() != 0 {
		t.Fatalf("another rate resumed %d images (%v)", k.Resumed(), err)
	}
}

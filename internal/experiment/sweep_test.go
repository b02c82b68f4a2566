package experiment

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// A style sweep over one of the run's control images makes the parent's style a control in
// its place: the owner's style is never its own control.
func TestSweepSwapsTheControl(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	owner, mosaic, udnie := file("owner.png", "o"), file("mosaic.png", "m"), file("udnie.png", "u")
	swept := file("mosaic-copy.png", "m") // the same image under another name
	got, err := swapControl([]string{mosaic, udnie}, swept, owner)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{owner, udnie}; !slices.Equal(got, want) {
		t.Errorf("controls %v, want %v", got, want)
	}
	if got, _ := swapControl([]string{mosaic, udnie}, owner, owner); !slices.Equal(got, []string{mosaic, udnie}) {
		t.Errorf("a style that is no control changed the controls: %v", got)
	}
	if _, err := swapControl([]string{filepath.Join(dir, "gone.png")}, swept, owner); err == nil {
		t.Error("a missing control image: no error")
	}
}

package experiment

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func writeProfile(t *testing.T, body string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "profile.json")
	if err := os.WriteFile(f, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// Every built-in profile, written as results.json records it, loads back as itself.
func TestLoadProfileRoundTrip(t *testing.T) {
	for name, f := range Profiles {
		want := f()
		if err := want.Validate(); err != nil {
			t.Fatalf("built-in profile %s: %v", name, err)
		}
		b, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		got, err := LoadProfile(writeProfile(t, string(b)))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: loaded %+v, want %+v", name, got, want)
		}
	}
}

// The fields a file gives override the built-in profile it names; the rest stay.
func TestLoadProfileOverrides(t *testing.T) {
	got, err := LoadProfile(writeProfile(t, `{"name": "demo", "train_per_class": 800, "arch": "wrn16-1", "Style": {"strength": 3}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := Demo()
	want.TrainPerClass, want.Arch, want.Style.Strength = 800, "wrn16-1", 3
	if !reflect.DeepEqual(got, want) {
		t.Errorf("loaded %+v, want %+v", got, want)
	}
	// A name that is no built-in profile starts from quick and keeps its name.
	got, err = LoadProfile(writeProfile(t, `{"name": "mine", "epochs": 2}`))
	if err != nil {
		t.Fatal(err)
	}
	want = Quick()
	want.Name, want.Epochs = "mine", 2
	if !reflect.DeepEqual(got, want) {
		t.Errorf("loaded %+v, want %+v", got, want)
	}
}

func TestLoadProfileErrors(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{`{"name": "demo", "epoch": 3}`, `unknown field "epoch"`},
		{`{"name": "demo", "rate": 1.5}`, "rate 1.5"},
		{`{"name": "demo", "benign": 1}`, "benign 1"},
		{`{"name": "demo", "m_white": 1}`, "m_white 1"},
		{`{"name": "demo", "alpha": 0}`, "alpha 0"},
		{`{"name": "demo", "meta_hidden": "deep"}`, `meta_hidden "deep"`},
		{`{"name": "demo", "Style": {"steps": 0}}`, "style steps"},
		{`[1, 2]`, "not one JSON object"},
		{`{"name": "demo"} {}`, "not one JSON object"},
	} {
		f := writeProfile(t, c.body)
		_, err := LoadProfile(f)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), f) {
			t.Errorf("%s: error %v, want one naming %s and saying %q", c.body, err, f, c.want)
		}
	}
	if _, err := LoadProfile(filepath.Join(t.TempDir(), "none.json")); err == nil || !strings.Contains(err.Error(), "none.json") {
		t.Errorf("missing file: error %v", err)
	}
}

// The profiles the README runs (examples/profiles) load, and each changes its built-in base.
func TestExampleProfilesLoad(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "examples", "profiles", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no example profiles (%v)", err)
	}
	for _, f := range files {
		p, err := LoadProfile(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		base, err := ProfileByName(p.Name)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if reflect.DeepEqual(p, base) {
			t.Errorf("%s is the built-in %s profile unchanged", f, p.Name)
		}
	}
}

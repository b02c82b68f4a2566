package experiment

import (
	"slices"
	"testing"
)

func TestParseFamilies(t *testing.T) {
	got, err := ParseFamilies([]string{"input-grad", "all", "weights,input-grad"})
	if err != nil {
		t.Fatal(err)
	}
	// "all" adds every family once, after those named before it.
	want := append([]string{"input-grad"}, slices.DeleteFunc(slices.Clone(Families), func(f string) bool { return f == "input-grad" })...)
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for _, f := range Families {
		if familyLayouts[f] == "" {
			t.Errorf("family %s has no layout", f)
		}
	}
	if _, err := ParseFamilies([]string{"weights,gradients"}); err == nil {
		t.Error("an unknown family was accepted")
	}
}

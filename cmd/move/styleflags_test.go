package main

import (
	"io"
	"testing"

	"move/internal/experiment"
)

// TestStyleFlagsOverrideProfile checks that --keep-colors and --strength override the
// profile's style only when given.
func TestStyleFlagsOverrideProfile(t *testing.T) {
	for _, tc := range []struct {
		args        []string
		keep        bool
		strength    float64
		feedForward bool
	}{
		{nil, false, 8, false},
		{[]string{"--keep-colors"}, true, 8, false},
		{[]string{"--keep-colors=false"}, false, 8, false},
		{[]string{"--keep-colors", "--strength", "3"}, true, 3, false},
		{[]string{"--transfer", "feedforward"}, false, 8, true},
	} {
		fs := newFlags("demo", io.Discard)
		apply := styleFlags(fs)
		if err := parse(fs, tc.args); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		p := experiment.Demo()
		apply(&p)
		if p.Style.KeepColors != tc.keep || p.Style.Strength != tc.strength || p.FeedForward != tc.feedForward {
			t.Errorf("%v: keep colours %v, strength %g, feed-forward %v; want %v, %g, %v", tc.args,
				p.Style.KeepColors, p.Style.Strength, p.FeedForward, tc.keep, tc.strength, tc.feedForward)
		}
	}
	// A profile that keeps the colours keeps them unless told not to.
	fs := newFlags("experiment", io.Discard)
	apply := styleFlags(fs)
	if err := parse(fs, []string{"--strength", "4"}); err != nil {
		t.Fatal(err)
	}
	q := experiment.Quick()
	q.Style.KeepColors = true
	apply(&q)
	if !q.Style.KeepColors || q.Style.Strength != 4 {
		t.Errorf("--strength alone: keep colours %v, strength %g; want true, 4", q.Style.KeepColors, q.Style.Strength)
	}
}

package main

import (
	"fmt"
	"io"
	"time"
)

// progress prints throttled status lines to stderr: at most one every interval, plus the
// lines marked final.
type progress struct {
	w        io.Writer
	interval time.Duration
	last     time.Time
}

func newProgress(w io.Writer) *progress { return &progress{w: w, interval: 2 * time.Second} }

func (p *progress) printf(final bool, format string, a ...any) {
	if !final && time.Since(p.last) < p.interval {
		return
	}
	p.last = time.Now()
	fmt.Fprintf(p.w, format+"\n", a...)
}

func fmtDuration(d time.Duration) string {
	d = d.Round(time.Second)
	if d >= time.Hour {
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	if d >= time.Minute {
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%ds", int(d.Seconds()))
}

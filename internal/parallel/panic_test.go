package parallel

import (
	"strings"
	"testing"
)

// A panic in any range reaches For's caller, where it can be recovered, and the pool keeps
// working afterwards.
func TestForRaisesPanicInCaller(t *testing.T) {
	for _, bad := range []int{0, Workers() - 1} {
		got := func() (r any) {
			defer func() { r = recover() }()
			For(100, func(lo, hi, w int) {
				if w == bad {
					panic("boom")
				}
			})
			return nil
		}()
		switch p := got.(type) {
		case string:
			if p != "boom" {
				t.Errorf("worker %d: recovered %q", bad, p)
			}
		case WorkerPanic:
			if p.Value != "boom" || !strings.Contains(p.String(), "worker goroutine") || len(p.Stack) == 0 {
				t.Errorf("worker %d: recovered %v", bad, p)
			}
		default:
			t.Fatalf("worker %d: recovered %v (%T), want the panic", bad, got, got)
		}
	}
	var hits [100]int
	For(100, func(lo, hi, _ int) {
		for i := lo; i < hi; i++ {
			hits[i]++
		}
	})
	for i, h := range hits {
		if h != 1 {
			t.Fatalf("after a panic, For visited index %d %d times", i, h)
		}
	}
}

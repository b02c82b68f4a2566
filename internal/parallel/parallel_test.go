package parallel

import (
	"sync/atomic"
	"testing"
)

func TestForCoversRangeOnce(t *testing.T) {
	for _, n := range []int{1, 2, 3, 17, 1000} {
		hits := make([]int32, n)
		var calls atomic.Int32
		For(n, func(lo, hi, w int) {
			calls.Add(1)
			if w < 0 || w >= Workers() {
				t.Errorf("worker index %d", w)
			}
			for i := lo; i < hi; i++ {
				atomic.AddInt32(&hits[i], 1)
			}
			// A nested call runs inline and still covers its range.
			// (It may also run on the pool, when the outer call did not: count atomically.)
			var inner atomic.Int32
			For(5, func(lo, hi, _ int) { inner.Add(int32(hi - lo)) })
			if inner.Load() != 5 {
				t.Errorf("nested For covered %d of 5", inner.Load())
			}
		})
		for i, h := range hits {
			if h != 1 {
				t.Fatalf("n=%d: index %d visited %d times", n, i, h)
			}
		}
		if int(calls.Load()) != min(n, Workers()) {
			t.Fatalf("n=%d: %d calls for %d workers", n, calls.Load(), Workers())
		}
	}
}

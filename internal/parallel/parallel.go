// Package parallel runs loops over a persistent pool of worker goroutines, one per CPU,
// with a static partition of the iterations so that results are deterministic.
package parallel

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
)

type job struct {
	fn     func(lo, hi, worker int)
	lo, hi int
	worker int
	wg     *sync.WaitGroup
	failed *panicked
}

// panicked holds the first panic of a worker, for For to raise again in its caller.
type panicked struct {
	once  sync.Once
	value any
	stack []byte
}

// WorkerPanic is what For panics with when fn panicked in a worker goroutine: the panic
// reaches the caller's goroutine, where it can be recovered, with the worker's stack.
type WorkerPanic struct {
	Value any
	Stack []byte
}

func (p WorkerPanic) String() string {
	return fmt.Sprintf("%v\n[in a worker goroutine]\n%s", p.Value, p.Stack)
}

// do runs one job, keeping a panic for the caller.
func (j job) do() {
	defer func() {
		if r := recover(); r != nil {
			j.failed.once.Do(func() { j.failed.value, j.failed.stack = r, debug.Stack() })
		}
		j.wg.Done()
	}()
	j.fn(j.lo, j.hi, j.worker)
}

var (
	startOnce sync.Once
	jobs      chan job
	mu        sync.Mutex // serialises For calls that use the pool; nested calls run inline
	busy      bool
	nworkers  int
)

func start() {
	nworkers = runtime.GOMAXPROCS(0)
	jobs = make(chan job, nworkers)
	for i := 1; i < nworkers; i++ {
		go func() {
			for j := range jobs {
				j.do()
			}
		}()
	}
}

// Workers is the number of workers For splits its range over.
func Workers() int {
	startOnce.Do(start)
	return nworkers
}

// For splits [0, n) into at most Workers() contiguous ranges of nearly equal size and calls
// fn(lo, hi, worker) for each, worker being the range's index (0 for the first range). The
// partition depends only on n and Workers(), so a reduction that keeps one partial result per
// worker and adds them in worker order is deterministic. For returns when all calls have.
// Calls from inside fn, or concurrent calls from other goroutines, run the same partition
// serially in the caller. A panic in fn reaches the caller's goroutine, where it can be
// recovered: from a worker goroutine as a WorkerPanic that carries the worker's stack.
func For(n int, fn func(lo, hi, worker int)) {
	if n <= 0 {
		return
	}
	p := Workers()
	if p > n {
		p = n
	}
	if p == 1 || !tryAcquire() {
		// Same partition, run in order, so results do not depend on contention.
		for w := 0; w < p; w++ {
			fn(w*n/p, (w+1)*n/p, w)
		}
		return
	}
	defer release()
	var wg sync.WaitGroup
	failed := &panicked{}
	wg.Add(p - 1)
	for w := 1; w < p; w++ {
		jobs <- job{fn: fn, lo: w * n / p, hi: (w + 1) * n / p, worker: w, wg: &wg, failed: failed}
	}
	func() {
		defer wg.Wait() // the workers finish their share even when the caller's panics
		fn(0, n/p, 0)
	}()
	if failed.value != nil {
		panic(WorkerPanic{Value: failed.value, Stack: failed.stack})
	}
}

func tryAcquire() bool {
	mu.Lock()
	defer mu.Unlock()
	if busy {
		return false
	}
	busy = true
	return true
}

func release() {
	mu.Lock()
	busy = false
	mu.Unlock()
}

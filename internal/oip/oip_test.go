package oip

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"move/internal/classifier"

	"move/internal/data"
	"move/internal/models"
)

func serve(t *testing.T) (*Server, *httptest.Server, models.Model) {
	t.Helper()
	m, _ := models.New("resnet20", 4, 3)
	s := &Server{Name: "victim", Model: classifier.Local(m, data.CIFAR10Norm, 16)}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return s, ts, m
}

func TestRoundTripMatchesLocal(t *testing.T) {
	s, ts, m := serve(t)
	c, err := Dial(context.Background(), ts.URL+"/v2/models/victim", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if c.Size != 16 {
		t.Fatalf("input size %d from metadata", c.Size)
	}
	set := data.Synthetic(70, 4, 16, 1)
	imgs := make([][]uint8, set.Len())
	for i := range imgs {
		imgs[i] = set.Image(i)
	}
	c.Batch = 16 // several requests, in parallel
	got, err := c.Probs(imgs, 16, 16)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := classifier.Local(m, data.CIFAR10Norm, 0).Probs(imgs, 16, 16)
	for i := range want {
		for j := range want[i] {
			if d := got[i][j] - want[i][j]; d > 1e-5 || d < -1e-5 {
				t.Fatalf("image %d class %d: %g over HTTP, %g locally", i, j, got[i][j], want[i][j])
			}
		}
	}
	if c.Queries() != 70 || s.Queries != 70 {
		t.Fatalf("queries: client %d, server %d", c.Queries(), s.Queries)
	}
	c.Budget = 100
	if _, err := c.Probs(imgs, 16, 16); !errors.Is(err, ErrBudget) {
		t.Fatalf("over budget: %v", err)
	}
	for _, path := range []string{"/v2/health/live", "/v2/health/ready", "/v2/models/victim/ready"} {
		r, err := http.Get(ts.URL + path)
		if err != nil || r.StatusCode != 200 {
			t.Fatalf("%s: %v %v", path, err, r)
		}
	}
}

func TestServerRejectsBadRequests(t *testing.T) {
	_, ts, _ := serve(t)
	for _, body := range []string{
		`not json`,
		`{"inputs":[]}`,
		`{"inputs":[{"name":"images","shape":[1,8,8,3],"datatype":"FP32","data":[]}]}`,
		`{"inputs":[{"name":"images","shape":[1,16,16,3],"datatype":"FP32","data":[1,2,3]}]}`,
		`{"inputs":[{"name":"images","shape":[1,16,16,3],"datatype":"INT8","data":[]}]}`,
	} {
		r, err := http.Post(ts.URL+"/v2/models/victim/infer", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if r.StatusCode != 400 {
			t.Errorf("%s: status %d, want 400", body, r.StatusCode)
		}
	}
	r, _ := http.Post(ts.URL+"/v2/models/other/infer", "application/json", strings.NewReader(`{}`))
	if r.StatusCode != 404 {
		t.Errorf("unknown model: status %d", r.StatusCode)
	}
}

// Malformed and hostile answers are errors, never crashes; 5xx answers are retried.
func TestClientHostileServers(t *testing.T) {
	img := [][]uint8{make([]uint8, 16*16*3)}
	answers := map[string]string{
		"malformed":  `{"outputs": [`,
		"no outputs": `{"outputs": []}`,
		"bad shape":  `{"outputs":[{"name":"probabilities","shape":[1,4],"datatype":"FP32","data":[0.5,0.5]}]}`,
		"negative":   `{"outputs":[{"name":"probabilities","shape":[1,2],"datatype":"FP32","data":[-0.5,1.5]}]}`,
		"not summed": `{"outputs":[{"name":"probabilities","shape":[1,2],"datatype":"FP32","data":[0.1,0.1]}]}`,
		"huge shape": `{"outputs":[{"name":"probabilities","shape":[1,1000000000],"datatype":"FP32","data":[]}]}`,
	}
	for name, body := range answers {
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(body)) }))
		c := &Client{Base: ts.URL, Model: "m", Size: 16, Backoff: time.Millisecond}
		if _, err := c.Probs(img, 16, 16); err == nil {
			t.Errorf("%s: accepted", name)
		}
		ts.Close()
	}
	var calls atomic.Int32
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			w.WriteHeader(503)
			return
		}
		w.Write([]byte(`{"outputs":[{"name":"probabilities","shape":[1,2],"datatype":"FP32","data":[0.25,0.75]}]}`))
	}))
	defer flaky.Close()
	c := &Client{Base: flaky.URL, Model: "m", Size: 16, Backoff: time.Millisecond}
	p, err := c.Probs(img, 16, 16)
	if err != nil || p[0][1] != 0.75 || calls.Load() != 3 {
		t.Fatalf("flaky server: %v %v after %d calls", p, err, calls.Load())
	}
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }))
	defer down.Close()
	c = &Client{Base: down.URL, Model: "m", Size: 16, Backoff: time.Millisecond, Retries: 2}
	if _, err := c.Probs(img, 16, 16); err == nil || !strings.Contains(err.Error(), "after 3 attempts") {
		t.Fatalf("server always failing: %v", err)
	}
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { time.Sleep(300 * time.Millisecond) }))
	defer slow.Close()
	c = &Client{Base: slow.URL, Model: "m", Size: 16, Backoff: time.Millisecond, Retries: 1, HTTP: &http.Client{Timeout: 50 * time.Millisecond}}
	if _, err := c.Probs(img, 16, 16); err == nil {
		t.Fatal("timeout not reported")
	}
}

func TestParseEndpoint(t *testing.T) {
	b, m, err := ParseEndpoint("http://127.0.0.1:8080/v2/models/resnet/infer")
	if err != nil || b != "http://127.0.0.1:8080" || m != "resnet" {
		t.Fatalf("%q %q %v", b, m, err)
	}
	for _, bad := range []string{"ftp://x/v2/models/a", "http://x/models/a", "http://x/v2/models/", "nonsense"} {
		if _, _, err := ParseEndpoint(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// A server with a Front answers what the front answers for the 8-bit images it was sent
// (the washing fronts of package wash sit there).
func TestServerFront(t *testing.T) {
	m, _ := models.New("resnet20", 4, 3)
	local := classifier.Local(m, data.CIFAR10Norm, 16)
	front := &flipFront{inner: local}
	ts := httptest.NewServer((&Server{Name: "washed", Model: local, Front: front}).Handler())
	defer ts.Close()
	c, err := Dial(context.Background(), ts.URL+"/v2/models/washed", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	set := data.Synthetic(5, 4, 16, 2)
	var imgs [][]uint8
	for i := range set.Len() {
		imgs = append(imgs, set.Image(i))
	}
	got, err := c.Probs(imgs, 16, 16)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := front.Probs(imgs, 16, 16)
	plain, _ := local.Probs(imgs, 16, 16)
	differs := false
	for i := range want {
		for j := range want[i] {
			if d := got[i][j] - want[i][j]; d > 1e-5 || d < -1e-5 {
				t.Fatalf("image %d class %d: %g served, %g from the front", i, j, got[i][j], want[i][j])
			}
			differs = differs || got[i][j] != plain[i][j]
		}
	}
	if !differs {
		t.Fatal("the served answers are the model's own: the front was not used")
	}
	if len(front.seen) != 2*len(imgs) || string(front.seen[0]) != string(imgs[0]) {
		t.Fatalf("the front saw %d images; the first is the one sent: %v", len(front.seen), string(front.seen[0]) == string(imgs[0]))
	}
	// A front that answers the wrong number of classes is the server's error, said so.
	bad := httptest.NewServer((&Server{Name: "bad", Model: local, Front: shortFront{}}).Handler())
	defer bad.Close()
	cb, err := Dial(context.Background(), bad.URL+"/v2/models/bad", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cb.Probs(imgs[:1], 16, 16); err == nil || !strings.Contains(err.Error(), "front") {
		t.Fatalf("a front with 2 classes for a 4-class model: %v", err)
	}
}

// flipFront answers the model's probabilities on each image flipped left to right.
type flipFront struct {
	inner classifier.Prober
	seen  [][]uint8
}

func (f *flipFront) Probs(imgs [][]uint8, h, w int) ([][]float32, error) {
	var flipped [][]uint8
	for _, p := range imgs {
		f.seen = append(f.seen, p)
		q := make([]uint8, len(p))
		for y := range h {
			for x := range w {
				copy(q[(y*w+x)*3:(y*w+x)*3+3], p[(y*w+w-1-x)*3:])
			}
		}
		flipped = append(flipped, q)
	}
	return f.inner.Probs(flipped, h, w)
}

type shortFront struct{}

func (shortFront) Probs(imgs [][]uint8, h, w int) ([][]float32, error) {
	out := make([][]float32, len(imgs))
	for i := range out {
		out[i] = []float32{0.5, 0.5}
	}
	return out, nil
}

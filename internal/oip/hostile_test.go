package oip

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func get(t *testing.T, url string) (int, map[string]any, http.Header) {
	t.Helper()
	r, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	var v map[string]any
	b, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("GET %s: status %d, body %q is not JSON", url, r.StatusCode, b)
	}
	return r.StatusCode, v, r.Header
}

func post(t *testing.T, url, body string) (int, map[string]any) {
	t.Helper()
	r, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("POST %s: status %d, body %q is not JSON", url, r.StatusCode, b)
	}
	return r.StatusCode, v
}

// image is one 16x16 request body with the given data JSON.
func image(data string) string {
	return `{"inputs":[{"name":"images","shape":[1,16,16,3],"datatype":"FP32","data":` + data + `}]}`
}

func flat(v float64) string {
	b, _ := json.Marshal(make([]float64, 16*16*3))
	if v == 0 {
		return string(b)
	}
	return strings.ReplaceAll(string(b), "0", "0.5")
}

// The server follows the KServe v2 REST API for every endpoint it implements (issue 16,
// item 12): server metadata, model versions, JSON errors for every status.
func TestServerConformance(t *testing.T) {
	_, ts, _ := serve(t)
	if code, v, _ := get(t, ts.URL+"/v2"); code != 200 || v["name"] != "move" || v["version"] == "" || v["extensions"] == nil {
		t.Errorf("GET /v2: %d %v", code, v)
	}
	for _, p := range []string{"/v2/health/live", "/v2/health/ready", "/v2/models/victim/ready", "/v2/models/victim/versions/1/ready"} {
		if code, _, _ := get(t, ts.URL+p); code != 200 {
			t.Errorf("GET %s: %d", p, code)
		}
	}
	for _, p := range []string{"/v2/models/victim", "/v2/models/victim/versions/1"} {
		code, v, _ := get(t, ts.URL+p)
		if code != 200 || v["name"] != "victim" || len(v["versions"].([]any)) != 1 {
			t.Errorf("GET %s: %d %v", p, code, v)
		}
	}
	if code, v := post(t, ts.URL+"/v2/models/victim/versions/1/infer", image(flat(0))); code != 200 || v["model_version"] != "1" {
		t.Errorf("versioned infer: %d %v", code, v)
	}
	for p, want := range map[string]int{"/v2/models/victim/versions/2": 404, "/v2/models/other": 404, "/v2/nothing": 404, "/": 404} {
		if code, v, _ := get(t, ts.URL+p); code != want || v["error"] == nil {
			t.Errorf("GET %s: %d %v, want %d with a JSON error", p, code, v, want)
		}
	}
	// The wrong method: 405, JSON, with Allow.
	code, v := post(t, ts.URL+"/v2/models/victim", `{}`)
	if code != 405 || v["error"] == nil {
		t.Errorf("POST metadata: %d %v", code, v)
	}
	if code, v, h := get(t, ts.URL+"/v2/models/victim/infer"); code != 405 || v["error"] == nil || h.Get("Allow") != "POST" {
		t.Errorf("GET infer: %d %v Allow %q", code, v, h.Get("Allow"))
	}
}

// Request bodies are read as the protocol says: nested data accepted; a wrong input name,
// unknown outputs and anything after the JSON object refused.
func TestServerRequestBodies(t *testing.T) {
	_, ts, _ := serve(t)
	url := ts.URL + "/v2/models/victim/infer"
	var rows []any
	for range 16 {
		var row []any
		for range 16 {
			row = append(row, []float64{0.1, 0.2, 0.3})
		}
		rows = append(rows, row)
	}
	nested, _ := json.Marshal([]any{rows})
	if code, v := post(t, url, image(string(nested))); code != 200 {
		t.Errorf("nested data: %d %v", code, v)
	}
	bad := map[string]string{
		"wrong input name": strings.Replace(image(flat(0)), `"images"`, `"pixels"`, 1),
		"unknown output":   strings.Replace(image(flat(0)), `}]}`, `}],"outputs":[{"name":"logits"}]}`, 1),
		"trailing garbage": image(flat(0)) + ` {"more": 1}`,
		"object in data":   image(`[{"a": 1}]`),
		"deep nesting":     image(`[[[[[[[[[[1]]]]]]]]]]`),
		"pixel 2":          image(strings.Replace(flat(0), "0", "2", 1)),
	}
	for name, body := range bad {
		if code, v := post(t, url, body); code != 400 || v["error"] == nil {
			t.Errorf("%s: %d %v, want 400 with a JSON error", name, code, v)
		}
	}
	if code, v := post(t, url, strings.Replace(image(flat(0)), `}]}`, `}],"outputs":[{"name":"probabilities"}]}`, 1)); code != 200 {
		t.Errorf("asking for the output by name: %d %v", code, v)
	}
}

func TestCheckName(t *testing.T) {
	for _, n := range []string{"a/b", "", "..", "a b", "a?b", strings.Repeat("x", 200)} {
		if CheckName(n) == nil {
			t.Errorf("name %q accepted", n)
		}
	}
	for _, n := range []string{"victim", "resnet20-s1.e8", "M_2"} {
		if err := CheckName(n); err != nil {
			t.Errorf("name %q: %v", n, err)
		}
	}
}

// At most MaxInFlight requests are read at once (issue 16, item 3): the others wait before
// their bodies are read.
func TestServerBoundsConcurrency(t *testing.T) {
	s, ts, _ := serve(t)
	if cap(s.slots) != 2 {
		t.Fatalf("default slots %d, want 2", cap(s.slots))
	}
	var inside, most atomic.Int32
	s.entered = func() func() {
		n := inside.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		return func() { inside.Add(-1) }
	}
	body := image(flat(0.5))
	done := make(chan error)
	for range 8 {
		go func() {
			pr, pw := io.Pipe()
			go func() { // a slow client: the body arrives in pieces
				for i := 0; i < len(body); i += len(body) / 4 {
					pw.Write([]byte(body[i:min(len(body), i+len(body)/4)]))
					time.Sleep(20 * time.Millisecond)
				}
				pw.Close()
			}()
			r, err := http.Post(ts.URL+"/v2/models/victim/infer", "application/json", pr)
			if err == nil {
				r.Body.Close()
				if r.StatusCode != 200 {
					err = errors.New(r.Status)
				}
			}
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if s.Queries != 8 || most.Load() != 2 {
		t.Fatalf("answered %d of 8 with at most %d at once, want 2", s.Queries, most.Load())
	}
}

// The client counts every image it sends, retries included, against the budget (issue 16,
// item 7): a server that fails every other request cannot be sent more than the budget.
func TestClientBudgetCountsRetries(t *testing.T) {
	var received atomic.Int64
	var calls atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req InferRequest
		json.NewDecoder(r.Body).Decode(&req)
		received.Add(int64(req.Inputs[0].Shape[0]))
		if calls.Add(1)%2 == 1 {
			w.WriteHeader(503)
			return
		}
		n := req.Inputs[0].Shape[0]
		out := Tensor{Name: "probabilities", Shape: []int{n, 2}, Datatype: "FP32"}
		for range n {
			out.Data = append(out.Data, 0.5, 0.5)
		}
		json.NewEncoder(w).Encode(InferResponse{Outputs: []Tensor{out}})
	}))
	defer ts.Close()
	c := &Client{Base: ts.URL, Model: "m", Size: 4, Backoff: time.Millisecond, Batch: 10, Budget: 60, Concurrency: 1}
	imgs := make([][]uint8, 60)
	for i := range imgs {
		imgs[i] = make([]uint8, 4*4*3)
	}
	_, err := c.Probs(imgs, 4, 4)
	if !errors.Is(err, ErrBudget) {
		t.Fatalf("60 images with every other request failing under a budget of 60: %v", err)
	}
	if received.Load() > 60 || c.Queries() > 60 {
		t.Fatalf("the server received %d images, the client counted %d: over the budget of 60", received.Load(), c.Queries())
	}
}

// The first fatal error stops the call: no further batch is sent (issue 16, item 7).
func TestClientStopsAtFirstFatalError(t *testing.T) {
	var calls atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(400)
		w.Write([]byte(`{"error":"no"}`))
	}))
	defer ts.Close()
	c := &Client{Base: ts.URL, Model: "m", Size: 4, Batch: 1, Concurrency: 1}
	imgs := make([][]uint8, 20)
	for i := range imgs {
		imgs[i] = make([]uint8, 4*4*3)
	}
	if _, err := c.Probs(imgs, 4, 4); err == nil {
		t.Fatal("a 400 was not an error")
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d requests after the first fatal error, want 1", n)
	}
}

// An overall deadline ends a call however many requests remain (issue 16, item 7).
func TestClientDeadline(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	}))
	defer ts.Close()
	c := &Client{Base: ts.URL, Model: "m", Size: 4, Batch: 1, Concurrency: 1, HTTP: &http.Client{Timeout: time.Minute},
		Deadline: time.Now().Add(200 * time.Millisecond)}
	start := time.Now()
	_, err := c.Probs([][]uint8{make([]uint8, 48), make([]uint8, 48)}, 4, 4)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("past the deadline: %v", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("the call took %s with a 200 ms deadline", el)
	}
}

// Metadata that declares huge images is refused before anything is allocated for them.
func TestDialRefusesHugeInputs(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(ModelMetadata{Name: "m", Inputs: []TensorMeta{{Name: "images", Datatype: "FP32", Shape: []int{-1, 4096, 4096, 3}}}})
	}))
	defer ts.Close()
	if _, err := Dial(context.Background(), ts.URL+"/v2/models/m", time.Second); err == nil || !strings.Contains(err.Error(), "at most 1024") {
		t.Fatalf("4096x4096 inputs: %v", err)
	}
}

// A body that trickles in slower than BodyTimeout is cut off; the server goes on answering.
func TestServerBodyTimeout(t *testing.T) {
	s, ts, _ := serve(t)
	s.BodyTimeout = 200 * time.Millisecond
	pr, pw := io.Pipe()
	go func() {
		for i := range 40 { // one byte every 50 ms: 2 s for 40 bytes
			if _, err := pw.Write([]byte{"{\"inputs\":[{\"name\":\"images\"       "[i%36]}); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		pw.Close()
	}()
	start := time.Now()
	r, err := http.Post(ts.URL+"/v2/models/victim/infer", "application/json", pr)
	if err == nil {
		r.Body.Close()
		if r.StatusCode == 200 {
			t.Fatal("a trickling body was answered")
		}
	}
	if el := time.Since(start); el > 1500*time.Millisecond {
		t.Fatalf("the trickling request held the server %s with a 200 ms body timeout", el)
	}
	if code, _ := post(t, ts.URL+"/v2/models/victim/infer", image(flat(0))); code != 200 {
		t.Fatalf("after the slow client: %d", code)
	}
}

// A model that answers NaN gets a JSON 500, not an empty 200 (issue 16, item 8).
func TestServerNaNAnswer(t *testing.T) {
	_, ts, m := serve(t)
	for _, p := range m.Store().Params() {
		for i := range p.Value.Data {
			p.Value.Data[i] = float32(math.NaN())
		}
	}
	code, v := post(t, ts.URL+"/v2/models/victim/infer", image(flat(0)))
	if code != 500 || !strings.Contains(v["error"].(string), "NaN") {
		t.Fatalf("a NaN model: %d %v", code, v)
	}
}

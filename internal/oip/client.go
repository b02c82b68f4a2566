package oip

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"move/internal/data"
)

// maxResponse bounds a response body (64 MiB): a hostile server cannot make us allocate more.
const maxResponse = 64 << 20

// ErrBudget is returned when a request would exceed the query budget.
var ErrBudget = errors.New("query budget exhausted")

// Client queries one model of an OIP v2 server for class probabilities.
type Client struct {
	Base        string // server root, e.g. http://127.0.0.1:8080
	Model       string
	HTTP        *http.Client
	Retries     int           // attempts after the first for network errors and 5xx (default 3)
	Backoff     time.Duration // first back-off, doubled each retry (default 200 ms)
	Concurrency int           // requests in flight at once (default 2)
	Batch       int           // images per request (default 64)
	Budget      int           // images that may be sent in total, retries included (0: unlimited)
	Size        int           // the model's input size (read from metadata by Dial)
	// Deadline, when not zero, ends every call of the client at that time, however many
	// requests and retries remain.
	Deadline time.Time
	queries  atomic.Int64
}

// MaxInputSize bounds the image size a server's metadata may declare.
const MaxInputSize = 1024

// maxValues bounds the pixel values of one request (about 40 MB of JSON): a model that takes
// large images gets fewer images per request.
const maxValues = 4 << 20

// ParseEndpoint splits http://host:port/v2/models/NAME into the server root and model name.
func ParseEndpoint(endpoint string) (base, model string, err error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", "", fmt.Errorf("endpoint %q: want http(s)://HOST:PORT/v2/models/NAME", endpoint)
	}
	path := strings.TrimSuffix(u.Path, "/")
	name, ok := strings.CutPrefix(path, "/v2/models/")
	name = strings.TrimSuffix(name, "/infer")
	if !ok || name == "" || strings.Contains(name, "/") {
		return "", "", fmt.Errorf("endpoint %q: want http(s)://HOST:PORT/v2/models/NAME", endpoint)
	}
	return u.Scheme + "://" + u.Host, name, nil
}

// Dial makes a client for an endpoint URL and reads the model's input size from its metadata.
func Dial(ctx context.Context, endpoint string, timeout time.Duration) (*Client, error) {
	base, name, err := ParseEndpoint(endpoint)
	if err != nil {
		return nil, err
	}
	c := &Client{Base: base, Model: name, HTTP: &http.Client{Timeout: timeout}}
	var md ModelMetadata
	if err := c.do(ctx, http.MethodGet, "/v2/models/"+url.PathEscape(name), nil, 0, &md); err != nil {
		return nil, fmt.Errorf("model metadata: %w", err)
	}
	if len(md.Inputs) != 1 || len(md.Inputs[0].Shape) != 4 || md.Inputs[0].Shape[1] < 1 || md.Inputs[0].Shape[1] > MaxInputSize ||
		md.Inputs[0].Shape[1] != md.Inputs[0].Shape[2] || md.Inputs[0].Shape[3] != 3 {
		return nil, fmt.Errorf("model metadata: want one image input [N, S, S, 3] with S at most %d, got %+v", MaxInputSize, md.Inputs)
	}
	c.Size = md.Inputs[0].Shape[1]
	return c, nil
}

// Queries is the number of images sent so far, every retry counted.
func (c *Client) Queries() int { return int(c.queries.Load()) }

// spend counts n images about to be sent, refusing when they would pass the budget.
func (c *Client) spend(n int) error {
	for {
		q := c.queries.Load()
		if c.Budget > 0 && int(q)+n > c.Budget {
			return fmt.Errorf("%w: %d of %d images sent, %d more asked", ErrBudget, q, c.Budget, n)
		}
		if c.queries.CompareAndSwap(q, q+int64(n)) {
			return nil
		}
	}
}

// withDeadline is ctx ending at the client's Deadline too.
func (c *Client) withDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.Deadline.IsZero() {
		return context.WithCancel(ctx)
	}
	return context.WithDeadline(ctx, c.Deadline)
}

// do sends one request (retrying network errors and 5xx answers with back-off); images is
// how many images the body carries, counted against the budget on every attempt.
func (c *Client) do(ctx context.Context, method, path string, body []byte, images int, out any) error {
	ctx, cancel := c.withDeadline(ctx)
	defer cancel()
	retries, backoff := c.Retries, c.Backoff
	if retries == 0 {
		retries = 3
	}
	if backoff == 0 {
		backoff = 200 * time.Millisecond
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	var last error
	for attempt := 0; attempt <= retries; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(backoff << (attempt - 1)):
			}
		}
		if err := c.spend(images); err != nil {
			if last != nil {
				return fmt.Errorf("%w (after: %v)", err, last)
			}
			return err
		}
		req, err := http.NewRequestWithContext(ctx, method, c.Base+path, bytes.NewReader(body))
		if err != nil {
			return err
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := hc.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("%s %s: %w", method, path, deadlineErr(ctx))
			}
			last = err
			continue
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
		resp.Body.Close()
		switch {
		case err != nil:
			last = err
			continue
		case len(b) > maxResponse:
			return fmt.Errorf("%s %s: response larger than %d bytes", method, path, maxResponse)
		case resp.StatusCode >= 500:
			last = fmt.Errorf("%s %s: server error %s: %s", method, path, resp.Status, snippet(b))
			continue
		case resp.StatusCode != http.StatusOK:
			return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, snippet(b))
		}
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: malformed response: %v", method, path, err)
		}
		return nil
	}
	return fmt.Errorf("after %d attempts: %w", retries+1, last)
}

// deadlineErr says why ctx ended.
func deadlineErr(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("the client's deadline passed: %w", ctx.Err())
	}
	return ctx.Err()
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// Probs implements classifier.Prober: it resizes images to the model's input size, sends them
// in batches (Concurrency requests at a time) and checks every answer.
func (c *Client) Probs(imgs [][]uint8, h, w int) ([][]float32, error) {
	return c.ProbsContext(context.Background(), imgs, h, w)
}

// ProbsContext is Probs with a context. The first error stops the call: no further batch is
// sent, and those in flight are cancelled.
func (c *Client) ProbsContext(ctx context.Context, imgs [][]uint8, h, w int) ([][]float32, error) {
	if c.Budget > 0 && c.Queries()+len(imgs) > c.Budget {
		return nil, fmt.Errorf("%w: %d of %d images sent, %d more asked", ErrBudget, c.Queries(), c.Budget, len(imgs))
	}
	ctx, cancel := c.withDeadline(ctx)
	defer cancel()
	batch, conc := c.Batch, c.Concurrency
	if batch <= 0 {
		batch = 64
	}
	if conc <= 0 {
		conc = 2
	}
	size := c.Size
	if size <= 0 {
		size = h
	}
	if size > MaxInputSize {
		return nil, fmt.Errorf("images of %dx%d: more than %d pixels a side", size, size, MaxInputSize)
	}
	batch = max(1, min(batch, maxValues/(size*size*3)))
	out := make([][]float32, len(imgs))
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for s := 0; s < len(imgs); s += batch {
		part := imgs[s:min(len(imgs), s+batch)]
		sem <- struct{}{}
		mu.Lock()
		failed := first != nil
		mu.Unlock()
		if failed {
			<-sem
			break
		}
		wg.Add(1)
		go func(s int, part [][]uint8) {
			defer func() { <-sem; wg.Done() }()
			p, err := c.infer(ctx, part, h, w, size)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if first == nil {
					first = err
					cancel() // the others in flight stop too
				}
				return
			}
			copy(out[s:], p)
		}(s, part)
	}
	wg.Wait()
	if first != nil {
		return nil, first
	}
	return out, nil
}

func (c *Client) infer(ctx context.Context, imgs [][]uint8, h, w, size int) ([][]float32, error) {
	n := len(imgs)
	in := Tensor{Name: "images", Shape: []int{n, size, size, 3}, Datatype: "FP32", Data: make([]float32, 0, n*size*size*3)}
	for _, p := range imgs {
		if h != size || w != size {
			p = data.Resize(p, h, w, size, size)
		}
		for _, v := range p {
			in.Data = append(in.Data, float32(v)/255)
		}
	}
	body, err := json.Marshal(InferRequest{Inputs: []Tensor{in}})
	if err != nil {
		return nil, err
	}
	var resp InferResponse
	if err := c.do(ctx, http.MethodPost, "/v2/models/"+url.PathEscape(c.Model)+"/infer", body, n, &resp); err != nil {
		return nil, err
	}
	if len(resp.Outputs) < 1 {
		return nil, errors.New("inference response has no outputs")
	}
	o := resp.Outputs[0]
	for _, t := range resp.Outputs {
		if t.Name == "probabilities" {
			o = t
		}
	}
	if len(o.Shape) != 2 || o.Shape[0] != n || o.Shape[1] < 2 || o.Shape[1] > 100000 || len(o.Data) != n*o.Shape[1] {
		return nil, fmt.Errorf("inference response: want %d rows of probabilities, got shape %v with %d values", n, o.Shape, len(o.Data))
	}
	k := o.Shape[1]
	out := make([][]float32, n)
	for i := range n {
		row := o.Data[i*k : (i+1)*k]
		var sum float64
		for _, v := range row {
			if math.IsNaN(float64(v)) || v < 0 || v > 1 {
				return nil, fmt.Errorf("inference response: row %d is not a probability vector", i)
			}
			sum += float64(v)
		}
		if math.Abs(sum-1) > 1e-3 {
			return nil, fmt.Errorf("inference response: row %d sums to %g, not 1 (is the output softmax probabilities?)", i, sum)
		}
		out[i] = row
	}
	return out, nil
}

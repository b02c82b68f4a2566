package oip

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"regexp"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"move/internal/buildinfo"
	"move/internal/classifier"
	"move/internal/models"
	"move/internal/nn"
	"move/internal/tensor"
)

// maxRequest bounds a request body (64 MiB).
const maxRequest = 64 << 20

// maxImages bounds the images of one request; chunk is how many go through the network at
// once (the activations of 4,096 images at once would take gigabytes).
const (
	maxImages = 4096
	chunk     = 256
)

// Version is the one model version a server serves.
const Version = "1"

// validName is what a model name may be: it is a URL path segment.
var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// CheckName reports an error for a model name that cannot be served (it must be one URL path
// segment of letters, digits, '.', '_' and '-').
func CheckName(name string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("model name %q: use letters, digits, '.', '_' and '-' (it is a URL path segment)", name)
	}
	return nil
}

// Server serves one local classifier (its Size is the input height and width it takes). At
// most MaxInFlight inference requests are read and answered at once (default 2); the others
// wait, without their bodies in memory, up to QueueTimeout (default 10 minutes; then 503).
// Once a request holds a slot its body must arrive within BodyTimeout (default 2 minutes).
type Server struct {
	Name         string
	Model        classifier.Model
	MaxInFlight  int
	BodyTimeout  time.Duration
	QueueTimeout time.Duration
	// Front, when set, answers in place of Model's network: each image, rounded to 8 bits,
	// goes to it, as to a service that transforms its queries before its model sees them
	// (wash.Input). Its answers must have Model's number of classes.
	Front   classifier.Prober
	mu      sync.Mutex
	Queries int // images answered
	once    sync.Once
	slots   chan struct{}
	entered func() (left func()) // test hook: called with a slot held
}

// Handler returns the HTTP handler of the v2 REST API: server and model metadata, health and
// readiness, inference, each also under /versions/1. Every answer, errors included, is JSON.
func (s *Server) Handler() http.Handler {
	s.once.Do(func() {
		n := s.MaxInFlight
		if n <= 0 {
			n = 2
		}
		s.slots = make(chan struct{}, n)
	})
	mux := http.NewServeMux()
	handle := func(pattern, method string, h func(http.ResponseWriter, *http.Request)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead) {
				w.Header().Set("Allow", method)
				writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s %s: use %s", r.Method, r.URL.Path, method))
				return
			}
			h(w, r)
		})
	}
	model := func(h func(http.ResponseWriter, *http.Request)) func(http.ResponseWriter, *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.PathValue("name") != s.Name {
				writeError(w, http.StatusNotFound, fmt.Sprintf("unknown model %q", r.PathValue("name")))
				return
			}
			if v := r.PathValue("version"); v != "" && v != Version {
				writeError(w, http.StatusNotFound, fmt.Sprintf("model %q has no version %q (it has %q)", s.Name, v, Version))
				return
			}
			h(w, r)
		}
	}
	handle("/v2", http.MethodGet, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, ServerMetadata{Name: "move", Version: buildinfo.Version, Extensions: []string{}})
	})
	handle("/v2/health/live", http.MethodGet, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"live": true})
	})
	handle("/v2/health/ready", http.MethodGet, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"ready": true})
	})
	for _, base := range []string{"/v2/models/{name}", "/v2/models/{name}/versions/{version}"} {
		handle(base, http.MethodGet, model(s.metadata))
		handle(base+"/ready", http.MethodGet, model(func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, map[string]any{"name": s.Name, "ready": true})
		}))
		handle(base+"/infer", http.MethodPost, model(s.infer))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s", r.URL.Path))
	})
	return mux
}

func (s *Server) metadata(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, ModelMetadata{Name: s.Name, Platform: "move", Versions: []string{Version},
		Inputs:  []TensorMeta{{Name: "images", Datatype: "FP32", Shape: []int{-1, s.Model.Size, s.Model.Size, 3}}},
		Outputs: []TensorMeta{{Name: "probabilities", Datatype: "FP32", Shape: []int{-1, s.Model.Local.Classes()}}}})
}

func (s *Server) infer(w http.ResponseWriter, r *http.Request) {
	queue := cmp.Or(s.QueueTimeout, 10*time.Minute)
	wait := time.NewTimer(queue)
	defer wait.Stop()
	select { // a slot before the body is read: waiting requests hold no memory
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	case <-r.Context().Done():
		return
	case <-wait.C:
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("busy: no slot within %s; try again later", queue))
		return
	}
	// The body's deadline starts now, not when the request arrived: waiting is not slowness.
	http.NewResponseController(w).SetReadDeadline(time.Now().Add(cmp.Or(s.BodyTimeout, 2*time.Minute)))
	if s.entered != nil {
		defer s.entered()()
	}
	size := s.Model.Size
	var req InferRequest
	body := http.MaxBytesReader(w, r.Body, maxRequest)
	dec := json.NewDecoder(body)
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", maxRequest))
			return
		}
		writeError(w, http.StatusBadRequest, "bad request body: "+err.Error())
		return
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, "bad request body: something follows the JSON object")
		return
	}
	big := len(req.Inputs) == 1 && len(req.Inputs[0].Data) > 1<<20
	if big {
		defer debug.FreeOSMemory() // give a large request's memory back, not only to Go's heap
	}
	if len(req.Inputs) != 1 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("want 1 input, got %d", len(req.Inputs)))
		return
	}
	for _, o := range req.Outputs {
		if o.Name != "probabilities" {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown output %q (this model has one: \"probabilities\")", o.Name))
			return
		}
	}
	in := req.Inputs[0]
	if in.Name != "images" {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown input %q (this model has one: \"images\")", in.Name))
		return
	}
	if in.Datatype != "FP32" || len(in.Shape) != 4 || in.Shape[1] != size || in.Shape[2] != size || in.Shape[3] != 3 || in.Shape[0] < 1 || in.Shape[0] > maxImages {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("input must be FP32 [N<=%d, %d, %d, 3], got %s %v", maxImages, size, size, in.Datatype, in.Shape))
		return
	}
	n := in.Shape[0]
	if len(in.Data) != n*size*size*3 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("input shape %v needs %d values, got %d", in.Shape, n*size*size*3, len(in.Data)))
		return
	}
	for _, v := range in.Data {
		if math.IsNaN(float64(v)) || v < 0 || v > 1 {
			writeError(w, http.StatusBadRequest, "pixel values must be in [0, 1]")
			return
		}
	}
	k := s.Model.Local.Classes()
	probs := make([]float32, 0, n*k)
	per := size * size * 3
	s.mu.Lock() // one forward pass at a time: the engine uses every core already
	for a := 0; a < n; a += chunk {
		b := min(n, a+chunk)
		if s.Front != nil {
			out, err := s.frontProbs(in.Data[a*per:b*per], b-a, size, k)
			if err != nil {
				s.mu.Unlock()
				writeError(w, http.StatusInternalServerError, err.Error())
				return
			}
			probs = append(probs, out...)
			continue
		}
		x := tensor.New(b-a, size, size, 3)
		for i, v := range in.Data[a*per : b*per] {
			c := i % 3
			x.Data[i] = (v - s.Model.Norm.Mean[c]) / s.Model.Norm.Std[c]
		}
		probs = append(probs, nn.SoftmaxProbs(models.Eval(s.Model.Local, x)).Data...)
	}
	s.Queries += n
	s.mu.Unlock()
	for _, p := range probs {
		if math.IsNaN(float64(p)) || math.IsInf(float64(p), 0) {
			writeError(w, http.StatusInternalServerError, "the model answered NaN: its weights or this input make it fail")
			return
		}
	}
	version := r.PathValue("version")
	writeJSON(w, http.StatusOK, InferResponse{ModelName: s.Name, ModelVersion: version, ID: req.ID, Outputs: []Tensor{{
		Name: "probabilities", Shape: []int{n, k}, Datatype: "FP32", Data: probs}}})
}

// writeJSON answers v as JSON with status code; a value that cannot be encoded (a NaN
// probability) becomes a JSON error with status 500, never an empty 200.
func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		b, _ = json.Marshal(ErrorResponse{Error: "the answer cannot be encoded: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, ErrorResponse{Error: strings.TrimSpace(msg)})
}

// frontProbs asks the Front about n images of [0, 1] pixels, rounded to 8 bits.
func (s *Server) frontProbs(pix []float32, n, size, k int) ([]float32, error) {
	per := size * size * 3
	imgs := make([][]uint8, n)
	for i := range imgs {
		img := make([]uint8, per)
		for j, v := range pix[i*per : (i+1)*per] {
			img[j] = uint8(v*255 + 0.5)
		}
		imgs[i] = img
	}
	out, err := s.Front.Probs(imgs, size, size)
	if err != nil {
		return nil, fmt.Errorf("the model's front: %v", err)
	}
	flat := make([]float32, 0, n*k)
	for _, p := range out {
		if len(p) != k {
			return nil, fmt.Errorf("the model's front answered %d probabilities, the model has %d classes", len(p), k)
		}
		flat = append(flat, p...)
	}
	if len(out) != n {
		return nil, fmt.Errorf("the model's front answered %d images of %d", len(out), n)
	}
	return flat, nil
}

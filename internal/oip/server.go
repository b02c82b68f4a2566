package oip

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"

	"move/internal/classifier"
	"move/internal/nn"
	"move/internal/tensor"
)

// maxRequest bounds a request body (64 MiB).
const maxRequest = 64 << 20

// Server serves one local classifier (its Size is the input height and width it takes).
type Server struct {
	Name    string
	Model   classifier.Model
	mu      sync.Mutex
	Queries int // images answered
}

// Handler returns the HTTP handler of the v2 REST API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	ok := func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }
	mux.HandleFunc("GET /v2/health/live", ok)
	mux.HandleFunc("GET /v2/health/ready", ok)
	mux.HandleFunc("GET /v2/models/{name}/ready", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("name") != s.Name {
			writeError(w, http.StatusNotFound, fmt.Sprintf("unknown model %q", r.PathValue("name")))
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("GET /v2/models/{name}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("name") != s.Name {
			writeError(w, http.StatusNotFound, fmt.Sprintf("unknown model %q", r.PathValue("name")))
			return
		}
		writeJSON(w, http.StatusOK, ModelMetadata{Name: s.Name, Platform: "move", Versions: []string{"1"},
			Inputs:  []TensorMeta{{Name: "images", Datatype: "FP32", Shape: []int{-1, s.Model.Size, s.Model.Size, 3}}},
			Outputs: []TensorMeta{{Name: "probabilities", Datatype: "FP32", Shape: []int{-1, s.Model.Local.Classes()}}}})
	})
	mux.HandleFunc("POST /v2/models/{name}/infer", s.infer)
	return mux
}

func (s *Server) infer(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("name") != s.Name {
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown model %q", r.PathValue("name")))
		return
	}
	var req InferRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequest))
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "bad request body: "+err.Error())
		return
	}
	if len(req.Inputs) != 1 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("want 1 input, got %d", len(req.Inputs)))
		return
	}
	in := req.Inputs[0]
	if in.Datatype != "FP32" || len(in.Shape) != 4 || in.Shape[1] != s.Model.Size || in.Shape[2] != s.Model.Size || in.Shape[3] != 3 || in.Shape[0] < 1 || in.Shape[0] > 4096 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("input must be FP32 [N<=4096, %d, %d, 3], got %s %v", s.Model.Size, s.Model.Size, in.Datatype, in.Shape))
		return
	}
	n := in.Shape[0]
	if len(in.Data) != n*s.Model.Size*s.Model.Size*3 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("input shape %v needs %d values, got %d", in.Shape, n*s.Model.Size*s.Model.Size*3, len(in.Data)))
		return
	}
	x := tensor.New(n, s.Model.Size, s.Model.Size, 3)
	for i, v := range in.Data {
		if math.IsNaN(float64(v)) || v < 0 || v > 1 {
			writeError(w, http.StatusBadRequest, "pixel values must be in [0, 1]")
			return
		}
		c := i % 3
		x.Data[i] = (v - s.Model.Norm.Mean[c]) / s.Model.Norm.Std[c]
	}
	s.mu.Lock() // one forward pass at a time: the engine uses every core already
	logits := s.Model.Local.Forward(nil, nn.Const(x), false)
	probs := nn.SoftmaxProbs(logits.Value)
	s.Queries += n
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, InferResponse{ModelName: s.Name, ID: req.ID, Outputs: []Tensor{{
		Name: "probabilities", Shape: []int{n, s.Model.Local.Classes()}, Datatype: "FP32", Data: probs.Data}}})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, ErrorResponse{Error: strings.TrimSpace(msg)})
}

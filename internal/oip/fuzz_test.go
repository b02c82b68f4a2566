package oip

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"move/internal/classifier"
	"move/internal/data"
	"move/internal/models"
)

// FuzzInferRequest feeds arbitrary request bodies to the server's inference endpoint: it must
// never panic, and every answer is JSON with a status the protocol allows.
func FuzzInferRequest(f *testing.F) {
	m, _ := models.New("resnet20", 3, 1)
	s := &Server{Name: "m", Model: classifier.Local(m, data.CIFAR10Norm, 4)}
	h := s.Handler()
	f.Add([]byte(`{"inputs":[{"name":"images","shape":[1,4,4,3],"datatype":"FP32","data":[` + strings.Repeat("0.5,", 47) + `0.5]}]}`))
	f.Add([]byte(`{"inputs":[{"name":"images","shape":[1,4,4,3],"datatype":"FP32","data":[[[[0.1,0.2,0.3]]]]}]}`))
	f.Add([]byte(`{"inputs":[{"name":"images","shape":[4096,4,4,3],"datatype":"FP32","data":[]}],"outputs":[{"name":"x"}]}`))
	f.Add([]byte(`{"inputs":[]} trailing`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/v2/models/m/infer", strings.NewReader(string(body)))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		switch w.Code {
		case 200, 400, 413, 500:
		default:
			t.Fatalf("status %d", w.Code)
		}
		var v map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
			t.Fatalf("status %d with a body that is not JSON: %q", w.Code, w.Body.String())
		}
		if w.Code != 200 && v["error"] == nil {
			t.Fatalf("status %d without an error: %v", w.Code, v)
		}
	})
}

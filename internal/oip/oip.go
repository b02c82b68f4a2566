// Package oip speaks the Open Inference Protocol v2 REST API (as KServe, Triton and MLServer
// do): a server that serves a move model's class probabilities, and the client that black-box
// verification and the query attacks use, with timeouts, retries with back-off, a concurrency
// limit, a query budget and a count of the queries spent.
//
// The served model takes one input, "images": FP32 [N, H, W, 3], RGB pixels in [0, 1]; the
// server normalises them as the model was trained. It returns one output, "probabilities":
// FP32 [N, K], the softmax of the logits.
package oip

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Tensor is an OIP v2 tensor in JSON.
type Tensor struct {
	Name     string `json:"name"`
	Shape    []int  `json:"shape"`
	Datatype string `json:"datatype"`
	Data     Data   `json:"data"`
}

// Data is a tensor's data, row-major. It reads both forms the protocol allows: a flat array
// or arrays nested by the shape; it is written flat.
type Data []float32

// UnmarshalJSON implements json.Unmarshaler.
func (d *Data) UnmarshalJSON(b []byte) error {
	var flat []float32
	if err := json.Unmarshal(b, &flat); err == nil {
		*d = flat
		return nil
	}
	out := (*d)[:0]
	dec := json.NewDecoder(bytes.NewReader(b))
	depth := 0
	for {
		t, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("tensor data: %w", err)
		}
		switch v := t.(type) {
		case json.Delim:
			switch v {
			case '[':
				if depth++; depth > 8 {
					return errors.New("tensor data: arrays nested deeper than 8")
				}
			case ']':
				depth--
			default:
				return errors.New("tensor data: an object where numbers belong")
			}
		case float64:
			if depth == 0 {
				return errors.New("tensor data: not an array")
			}
			out = append(out, float32(v))
		default:
			return fmt.Errorf("tensor data: %v is not a number", v)
		}
	}
	*d = out
	return nil
}

// RequestOutput names an output a request asks for.
type RequestOutput struct {
	Name string `json:"name"`
}

// InferRequest is the body of POST /v2/models/{name}/infer.
type InferRequest struct {
	ID      string          `json:"id,omitempty"`
	Inputs  []Tensor        `json:"inputs"`
	Outputs []RequestOutput `json:"outputs,omitempty"`
}

// InferResponse is its answer.
type InferResponse struct {
	ModelName    string   `json:"model_name"`
	ModelVersion string   `json:"model_version,omitempty"`
	ID           string   `json:"id,omitempty"`
	Outputs      []Tensor `json:"outputs"`
}

// ServerMetadata is the answer of GET /v2.
type ServerMetadata struct {
	Name       string   `json:"name"`
	Version    string   `json:"version"`
	Extensions []string `json:"extensions"`
}

// TensorMeta describes an input or output in model metadata.
type TensorMeta struct {
	Name     string `json:"name"`
	Datatype string `json:"datatype"`
	Shape    []int  `json:"shape"`
}

// ModelMetadata is the answer of GET /v2/models/{name}.
type ModelMetadata struct {
	Name     string       `json:"name"`
	Versions []string     `json:"versions,omitempty"`
	Platform string       `json:"platform"`
	Inputs   []TensorMeta `json:"inputs"`
	Outputs  []TensorMeta `json:"outputs"`
}

// ErrorResponse is the body of an error answer.
type ErrorResponse struct {
	Error string `json:"error"`
}

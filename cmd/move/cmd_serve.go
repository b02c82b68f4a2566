package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"move/internal/atomicfile"
	"move/internal/classifier"
	"move/internal/modelfile"
	"move/internal/oip"
)

func init() {
	commands["serve"] = &command{
		summary: "serve a model over the Open Inference Protocol v2 (REST)",
		usage:   "--model FILE [--addr 127.0.0.1:8080] [--name NAME]",
		help: `Serves a model file's class probabilities with the Open Inference Protocol v2 REST API, as
KServe, Triton and MLServer speak it: POST /v2/models/NAME/infer, GET /v2/models/NAME
(metadata), GET /v2/models/NAME/ready, GET /v2/health/live and /v2/health/ready.
The input "images" is FP32 [N, S, S, 3], RGB pixels in [0, 1]; the output "probabilities" is
FP32 [N, K]. Stops on interrupt.

--addr 127.0.0.1:0 listens on a free port; --addr-file FILE writes the address listened on
(host:port) to FILE once the server accepts connections, for scripts that start it.

EXIT STATUS
  0 when stopped by an interrupt, 2 on error, 3 on an internal error (a bug).`,
		run: func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			var o serveOptions
			fs := newFlags("serve", stderr)
			onnxOpts := onnxFlags(fs)
			fs.StringVar(&o.model, "model", "", "model file")
			fs.StringVar(&o.addr, "addr", "127.0.0.1:8080", "listen address")
			fs.StringVar(&o.name, "name", "", "model name in URLs (default: the file name without extension)")
			fs.StringVar(&o.addrFile, "addr-file", "", "write the address listened on (host:port) to this file")
			if err := parse(fs, args); err != nil {
				return err
			}
			var err error
			if o.onnx, err = onnxOpts(); err != nil {
				return err
			}
			if err := need(fs, "model"); err != nil {
				return err
			}
			return runServe(ctx, o, stderr)
		},
	}
}

// serveOptions are move serve's flags.
type serveOptions struct {
	model, addr, name, addrFile string
	onnx                        modelfile.ONNXDefaults
}

func runServe(ctx context.Context, o serveOptions, stderr io.Writer) error {
	m, info, err := classifier.Load(o.model, o.onnx)
	if err != nil {
		return err
	}
	if o.name == "" {
		o.name = strings.TrimSuffix(filepath.Base(o.model), filepath.Ext(o.model))
	}
	srv := &oip.Server{Name: o.name, Model: m}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return err
	}
	if o.addrFile != "" {
		if err := atomicfile.WriteBytes(o.addrFile, true, []byte(ln.Addr().String()+"\n")); err != nil {
			ln.Close()
			return err
		}
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stderr, "serving %s (%s) at http://%s/v2/models/%s\n", o.model, info.Arch, ln.Addr(), o.name)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hs.Shutdown(sctx)
	}()
	if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	fmt.Fprintf(stderr, "stopped after answering %d images\n", srv.Queries)
	return nil
}

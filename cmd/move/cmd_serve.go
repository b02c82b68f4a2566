package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"move/internal/atomicfile"
	"move/internal/classifier"
	"move/internal/modelfile"
	"move/internal/oip"
	"move/internal/wash"
)

func init() {
	commands["serve"] = &command{
		summary: "serve a model over the Open Inference Protocol v2 (REST)",
		usage:   "--model FILE [--addr 127.0.0.1:8080] [--name NAME]",
		help: `Serves a model file's class probabilities with the Open Inference Protocol v2 REST API, as
KServe, Triton and MLServer speak it: POST /v2/models/NAME/infer, GET /v2/models/NAME
(metadata), GET /v2/models/NAME/ready, GET /v2/health/live and /v2/health/ready.
The input "images" is FP32 [N, S, S, 3], RGB pixels in [0, 1]; the output "probabilities" is
FP32 [N, K]. The data of a request may be flat or nested by the shape. GET /v2 answers the
server's metadata, and every model endpoint also answers under /versions/1; every answer,
errors included, is JSON. Stops gracefully on interrupt or SIGTERM (requests in flight are
answered first).

Hostile clients: at most --max-in-flight inference requests are read and answered at once
(the others wait up to 10 minutes without their bodies in memory, then get 503), a body may
be 64 MiB and must arrive within --read-timeout once it is being read, a request of up to 4,096 images goes through the network 256 at a
time, and the memory of a large request is given back to the system when it is answered.

--input-transform simulates a thief's washing front (see move help steal): jpeg:Q re-encodes
each query image as JPEG at quality Q, blur:S blurs it with a Gaussian of S pixels, augavg
answers the mean probabilities over the five augmentations of MOVE's black-box features.

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
			intIn(fs, &o.inFlight, "max-in-flight", 2, 1, 64, "inference requests read and answered at once (the others wait, holding no memory)")
			durationIn(fs, &o.readTimeout, "read-timeout", 2*time.Minute, "the most time a request's body may take to arrive once it is being read")
			fs.Func("input-transform", "transform every query first: jpeg:QUALITY, blur:SIGMA or augavg (a washing front)", func(v string) error {
				_, _, err := wash.ParseInput(v)
				o.transform = v
				return err
			})
			intIn(fs, &o.memoryMiB, "memory-limit", 768, 64, 1<<20, "soft limit of the Go heap, MiB (the collector works harder near it)")
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
	transform                   string
	inFlight, memoryMiB         int
	readTimeout                 time.Duration
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
	if err := oip.CheckName(o.name); err != nil {
		return err
	}
	debug.SetMemoryLimit(int64(o.memoryMiB) << 20)
	srv := &oip.Server{Name: o.name, Model: m, MaxInFlight: o.inFlight, BodyTimeout: o.readTimeout}
	if o.transform != "" {
		front, err := wash.NewInput(m, o.transform)
		if err != nil {
			return err
		}
		srv.Front = front
	}
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
	// No server-wide read or write timeout: a request waiting for a slot is not slow. The body
	// has --read-timeout once its request holds a slot (oip.Server), the headers 10 s.
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
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

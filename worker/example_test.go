package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/tether-run/tether"
	"github.com/tether-run/tether/worker"
)

// A worker process registers a handler per job type and runs; a client
// creates a job and waits for its result on the same request.
func Example() {
	// A tether node, in process for the example (usually: tether serve).
	dir, _ := os.MkdirTemp("", "tether-example-")
	defer os.RemoveAll(dir)
	srv, err := tether.New(tether.Config{Addr: "127.0.0.1:0", DataDir: dir}, tether.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		panic(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		panic(err)
	}
	defer srv.Shutdown(context.Background())
	addr := srv.Addr().String()

	// The worker (usually its own process).
	w, err := worker.New(worker.Config{URL: "ws://" + addr, ID: "greeter", Concurrency: 4})
	if err != nil {
		panic(err)
	}
	w.Handle("greet", func(ctx context.Context, job *worker.Job) (any, error) {
		var p struct{ Name string }
		if err := json.Unmarshal(job.Payload, &p); err != nil {
			return nil, err // the attempt fails; the server retries it
		}
		if err := job.Progress(ctx, "looking up "+p.Name); err != nil {
			return nil, err
		}
		return map[string]string{"greeting": "hello, " + p.Name}, nil
	})
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- w.Run(ctx) }()
	defer func() { stop(); <-ran }() // drain, grace, hand back: see Config.ShutdownGrace

	// A client: create the job and wait up to 10s for its outcome.
	resp, err := http.Post("http://"+addr+"/v1/jobs?wait=10s", "application/json",
		strings.NewReader(`{"type":"greet","payload":{"name":"Ada"}}`))
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	var job struct {
		State  string
		Worker string
		Result struct{ Greeting string }
	}
	json.NewDecoder(resp.Body).Decode(&job)
	fmt.Println(resp.StatusCode, job.State, job.Worker, job.Result.Greeting)
	// Output: 200 succeeded greeter hello, Ada
}

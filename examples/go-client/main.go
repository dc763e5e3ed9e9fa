// Command go-client is the Go quick start of README: it subscribes to a
// channel from its start, publishes to it, receives the message, then runs
// a job on the example worker and cancels a second one.
//
//	go run ./cmd/tether serve &
//	go run ./cmd/tether-worker --url ws://127.0.0.1:8080 &
//	go run ./examples/go-client
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/tether-run/tether/client"
)

func main() {
	url := "ws://127.0.0.1:8080"
	if u := os.Getenv("TETHER_URL"); u != "" {
		url = u
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	c, err := client.Dial(ctx, url, client.Config{
		OnState: func(sc client.StateChange) { log.Printf("connection %s (%s)", sc.State, sc.Reason) },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	got := make(chan client.Event, 1)
	_, err = c.Subscribe(ctx, "quickstart", client.SubscribeOptions{
		// Without After: only what is published from now on. An application
		// that persists ev.Cursor passes it here to resume after a restart.
		Handler: func(ev client.Event) {
			if ev.Kind == client.EventMessage {
				got <- ev
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	res, err := c.Publish(ctx, "quickstart", map[string]string{"hello": "from Go"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("published, durable at cursor", res.Cursor)
	ev := <-got
	fmt.Printf("received %s at cursor %s\n", ev.Data, ev.Cursor)

	// A job on the example worker: its result comes back on this call.
	out, err := c.Jobs().Run(ctx, "sleep", map[string]int{"ms": 200}, client.JobOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("job result %s\n", out)

	// Cancelling the context cancels the job on the server: its handler's
	// context ends at once, and the worker process lives on.
	jctx, jcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer jcancel()
	_, err = c.Jobs().Run(jctx, "sleep", map[string]int{"ms": 60_000}, client.JobOptions{
		OnProgress: func(p json.RawMessage) { fmt.Printf("progress %s\n", p) },
	})
	fmt.Println("long job, cancelled after 300ms:", err)
}

package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/tether-run/tether/client"
)

// These examples are compiled, not run: they need a tether server
// (`tether serve`). client/e2e_test.go runs the same calls against one.

func Example() {
	ctx := context.Background()
	c, err := client.Dial(ctx, "ws://127.0.0.1:8080", client.Config{
		OnState: func(sc client.StateChange) { log.Printf("tether: %s %s", sc.State, sc.Reason) },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	saved := "0" // the cursor the application persisted last time
	_, err = c.Subscribe(ctx, "news", client.SubscribeOptions{
		After: saved,
		Handler: func(ev client.Event) {
			switch ev.Kind {
			case client.EventMessage:
				fmt.Printf("%s: %s\n", ev.Cursor, ev.Data)
				saved = ev.Cursor // persist it
			case client.EventGap:
				fmt.Println("history trimmed; resync")
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	res, err := c.Publish(ctx, "news", map[string]string{"title": "hello"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("durable at", res.Cursor)
}

// A channel subscribed before the code that handles it is ready: its
// events wait (bounded) and are replayed, in order, when it registers.
func ExampleClient_Handle() {
	ctx := context.Background()
	c, err := client.Dial(ctx, "ws://127.0.0.1:8080", client.Config{
		BufferMaxMessages: 100,
		BufferTTL:         time.Minute,
		OnDropped: func(d client.Dropped) {
			log.Printf("%d events of %s dropped (%s)", d.Messages, d.Channel, d.Reason)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Subscribe(ctx, "chat", client.SubscribeOptions{After: "0"}); err != nil {
		log.Fatal(err)
	}
	// ... later, once the UI is up:
	c.Handle("chat", func(ev client.Event) {
		if ev.Kind == client.EventDropped {
			fmt.Printf("missed %d messages\n", ev.Dropped)
			return
		}
		fmt.Printf("%s\n", ev.Data)
	})
}

// Run a job, follow its progress, cancel it by cancelling ctx.
func ExampleJobs_Run() {
	c, err := client.Dial(context.Background(), "ws://127.0.0.1:8080", client.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel() // cancels the job on the server if it still runs
	result, err := c.Jobs().Run(ctx, "resize", map[string]string{"src": "a.png"}, client.JobOptions{
		OnProgress: func(p json.RawMessage) { fmt.Printf("progress %s\n", p) },
	})
	var je *client.JobError
	switch {
	case errors.As(err, &je):
		fmt.Println("job ended without a result:", je)
	case err != nil:
		fmt.Println("gave up:", err) // the job was cancelled on the server
	default:
		fmt.Printf("result %s\n", result)
	}
}

// Command river-bench runs the no-op job workload of docs/benchmarks.md
// ("## Jobs") through River (riverqueue/river) on PostgreSQL, for the
// comparison with tether's jobs. It is a module of its own, so that tether
// does not depend on River or pgx.
//
//	go run . --db postgres://postgres@127.0.0.1:55432/postgres?sslmode=disable --jobs 5000 --workers 4
//
// The workload: --jobs no-op jobs are inserted first (not timed); then
// --workers River clients start, each with its own connection pool and
// --concurrency job goroutines, as tether's worker processes each run
// --concurrency jobs; the clock runs from their start until River has
// recorded every job completed (completion events). It prints one JSON
// line: {"system":"river","jobs":N,"workers":W,"concurrency":C,"seconds":S,"jobs_per_sec":R}.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// NoopArgs is the job: it does nothing.
type NoopArgs struct{}

func (NoopArgs) Kind() string { return "noop" }

type NoopWorker struct {
	river.WorkerDefaults[NoopArgs]
}

func (*NoopWorker) Work(context.Context, *river.Job[NoopArgs]) error { return nil }

func main() {
	db := flag.String("db", "", "PostgreSQL URL (scripts/river/postgres.sh start prints it)")
	n := flag.Int("jobs", 5000, "no-op jobs")
	workers := flag.Int("workers", 4, "River clients, each with its own pool")
	concurrency := flag.Int("concurrency", 4, "jobs each client runs at once (MaxWorkers)")
	cooldown := flag.Duration("fetch-cooldown", 0, "River FetchCooldown (0: River's default, 100ms)")
	flag.Parse()
	if *db == "" {
		log.Fatal("--db is required")
	}
	if err := run(*db, *n, *workers, *concurrency, *cooldown); err != nil {
		log.Fatal(err)
	}
}

func run(db string, n, workers, concurrency int, cooldown time.Duration) error {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, db)
	if err != nil {
		return err
	}
	defer pool.Close()
	mig, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return err
	}
	if _, err := mig.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := pool.Exec(ctx, "TRUNCATE river_job"); err != nil {
		return err
	}

	// Insert with a client that does not work.
	ins, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: quiet()})
	if err != nil {
		return err
	}
	params := make([]river.InsertManyParams, n)
	for i := range params {
		params[i] = river.InsertManyParams{Args: NoopArgs{}}
	}
	for i := 0; i < n; i += 1000 {
		if _, err := ins.InsertMany(ctx, params[i:min(i+1000, n)]); err != nil {
			return fmt.Errorf("insert: %w", err)
		}
	}

	var done atomic.Int64
	all := make(chan struct{})
	var clients []*river.Client[pgx.Tx]
	for range workers {
		p, err := pgxpool.New(ctx, db)
		if err != nil {
			return err
		}
		defer p.Close()
		ws := river.NewWorkers()
		river.AddWorker(ws, &NoopWorker{})
		cfg := &river.Config{
			Logger:  quiet(),
			Queues:  map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: concurrency}},
			Workers: ws,
		}
		if cooldown > 0 {
			cfg.FetchCooldown = cooldown
		}
		c, err := river.NewClient(riverpgxv5.New(p), cfg)
		if err != nil {
			return err
		}
		events, cancel := c.Subscribe(river.EventKindJobCompleted)
		defer cancel()
		go func() {
			for range events {
				if done.Add(1) == int64(n) {
					close(all)
				}
			}
		}()
		clients = append(clients, c)
	}
	start := time.Now()
	for _, c := range clients {
		if err := c.Start(ctx); err != nil {
			return err
		}
	}
	select {
	case <-all:
	case <-time.After(10 * time.Minute):
		return fmt.Errorf("only %d of %d jobs completed in 10 minutes", done.Load(), n)
	}
	secs := time.Since(start).Seconds()
	for _, c := range clients {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		c.Stop(sctx)
		cancel()
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"system": "river", "jobs": n, "workers": workers, "concurrency": concurrency,
		"seconds": secs, "jobs_per_sec": float64(n) / secs,
	})
}

func quiet() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

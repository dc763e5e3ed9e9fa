//go:build linux

package conn

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testServer is a real http.Server on 127.0.0.1:0 wired as a user would:
// Listen, ConnContext, Watch.
type testServer struct {
	addr string
	ends chan endRec // every OnEnd, in order
}

type endRec struct {
	path string
	end  End
}

func startServer(t testing.TB, h http.Handler, cfg WatchConfig, ka KeepAlive) *testServer {
	t.Helper()
	ln, err := Listen(context.Background(), "127.0.0.1:0", ka)
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, ln, h, cfg)
}

func serve(t testing.TB, ln net.Listener, h http.Handler, cfg WatchConfig) *testServer {
	ts := &testServer{addr: ln.Addr().String(), ends: make(chan endRec, 2000)}
	cfg.OnEnd = func(r *http.Request, e End) { ts.ends <- endRec{r.URL.Path, e} }
	handler := Watch(h, cfg)
	if u, ok := h.(unwatched); ok {
		handler = u.Handler
	}
	srv := &http.Server{
		Handler:     handler,
		ConnContext: ConnContext,
		ErrorLog:    log.New(io.Discard, "", 0),
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-served
	})
	return ts
}

func (ts *testServer) nextEnd(t *testing.T) End {
	t.Helper()
	select {
	case r := <-ts.ends:
		return r.end
	case <-time.After(10 * time.Second):
		t.Fatal("no OnEnd within 10s")
		return End{}
	}
}

// call is one running request of waitHandler.
type call struct {
	ctx     context.Context
	w       http.ResponseWriter
	release chan string    // the test sends the body to answer with
	goneAt  chan time.Time // when the handler saw ctx.Done()
}

// waitHandler long-polls: it waits for the test's release or for its
// context, whichever comes first, and reports each call on calls. Headers
// it sets before waiting must not leak into Watch's 1xx probes.
func waitHandler(calls chan<- *call) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Handler", "final-only")
		c := &call{ctx: r.Context(), w: w, release: make(chan string, 1), goneAt: make(chan time.Time, 1)}
		calls <- c
		select {
		case body := <-c.release:
			io.WriteString(w, body)
		case <-r.Context().Done():
			c.goneAt <- time.Now()
		}
	})
}

func nextCall(t *testing.T, calls <-chan *call) *call {
	t.Helper()
	select {
	case c := <-calls:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("handler not called within 10s")
		return nil
	}
}

func dialGET(t *testing.T, addr, path, proto string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := fmt.Fprintf(c, "GET %s %s\r\nHost: test\r\n\r\n", path, proto); err != nil {
		t.Fatal(err)
	}
	return c.(*net.TCPConn)
}

// readResponse reads the final response, returning it with its body and
// the interim (1xx) responses before it.
func readResponse(br *bufio.Reader) (res *http.Response, body string, interim []*http.Response, err error) {
	for {
		res, err = http.ReadResponse(br, nil)
		if err != nil {
			return nil, "", interim, err
		}
		if res.StatusCode >= 200 {
			break
		}
		interim = append(interim, res)
	}
	b, err := io.ReadAll(res.Body)
	return res, string(b), interim, err
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(time.Millisecond)
	}
}

func waitGone(t *testing.T, c *call, d time.Duration) time.Time {
	t.Helper()
	select {
	case at := <-c.goneAt:
		return at
	case <-time.After(d):
		t.Fatalf("handler context not cancelled within %v", d)
		return time.Time{}
	}
}

func waitHalfClosed(t *testing.T, c *call) {
	t.Helper()
	waitFor(t, 5*time.Second, "half-close verdict", c.w.(*responseWriter).wt.isHalfClosed)
}

func checkCause(t *testing.T, ctx context.Context, want error) {
	t.Helper()
	if got := context.Cause(ctx); !errors.Is(got, want) {
		t.Fatalf("context.Cause = %v, want errors.Is %v", got, want)
	}
}

func isInterim102(t *testing.T, res *http.Response) {
	t.Helper()
	if res.StatusCode != http.StatusProcessing {
		t.Fatalf("interim status = %d, want 102", res.StatusCode)
	}
	if len(res.Header) != 0 {
		t.Fatalf("interim 102 carries headers %v, want none", res.Header)
	}
}

package tether_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tether-run/tether"
	"github.com/tether-run/tether/store"
)

func TestPublishThenPoll(t *testing.T) {
	n := startNode(t, nil)
	id1 := n.publish("news", `{"n": 1}`)
	id2 := n.publish("news", `"two"`)
	a := n.poll("news", "after=0&wait=0")
	if got, want := strings.Join(a.datas(), ","), `{"n":1},"two"`; got != want {
		t.Fatalf("messages %s, want %s", got, want)
	}
	if a.Messages[0].ID != id1 || a.Messages[1].ID != id2 || a.Next != id2 {
		t.Fatalf("ids %s %s next %s, want %s %s next %s", a.Messages[0].ID, a.Messages[1].ID, a.Next, id1, id2, id2)
	}
	if a.Messages[0].Time.IsZero() {
		t.Fatal("message has no time")
	}
	// Reading never consumes: the same poll gets the same answer.
	if b := n.poll("news", "after=0&wait=0"); strings.Join(b.datas(), ",") != strings.Join(a.datas(), ",") || b.Next != a.Next {
		t.Fatalf("second read %+v differs from first %+v", b, a)
	}
	if b := n.poll("news", "after="+id1+"&wait=0&limit=1"); len(b.Messages) != 1 || b.Messages[0].ID != id2 {
		t.Fatalf("after %s: %+v, want only %s", id1, b, id2)
	}
}

func TestPollWakesOnPublish(t *testing.T) {
	n := startNode(t, nil)
	after := n.publish("wake", `0`)
	type result struct {
		a   pollAnswer
		at  time.Time
		err error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get(n.base + "/v1/channels/wake/messages?wait=20s&after=" + after)
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		var a pollAnswer
		err = json.NewDecoder(resp.Body).Decode(&a)
		got <- result{a, time.Now(), err}
	}()
	n.waitingPolls(1)
	published := time.Now()
	id := n.publish("wake", `"hello"`)
	r := <-got
	if r.err != nil {
		t.Fatal(r.err)
	}
	if len(r.a.Messages) != 1 || r.a.Messages[0].ID != id || r.a.Next != id {
		t.Fatalf("woke with %+v, want message %s", r.a, id)
	}
	// From the publish request starting to the poller holding the message.
	if lat := r.at.Sub(published); lat > 50*time.Millisecond {
		t.Fatalf("woke %v after the publish, want < 50ms", lat)
	}
}

func TestPollKeepaliveWhenWaitRunsOut(t *testing.T) {
	n := startNode(t, nil)
	after := n.publish("quiet", `1`)
	start := time.Now()
	a := n.poll("quiet", "wait=300ms&after="+after)
	if el := time.Since(start); el < 300*time.Millisecond {
		t.Fatalf("answered after %v, before wait ran out", el)
	}
	if len(a.Messages) != 0 || a.Next != after || a.Gap {
		t.Fatalf("keepalive %+v, want no messages and next %s", a, after)
	}
	// No cursor: only messages newer than the request, next is the latest.
	if a := n.poll("quiet", "wait=0"); len(a.Messages) != 0 || a.Next != after {
		t.Fatalf("poll without cursor: %+v, want empty with next %s", a, after)
	}
	if a := n.poll("empty", "wait=0"); len(a.Messages) != 0 || a.Next != string(store.Start) {
		t.Fatalf("empty channel: %+v, want next %q", a, store.Start)
	}
}

// A client that resets while its long-poll waits must not lose the message
// published meanwhile: the next poll with the same cursor gets it.
func TestPollResetThenRetryGetsMessage(t *testing.T) {
	n := startNode(t, nil)
	after := n.publish("reset", `"before"`)
	c := rawGET(t, n.addr(), "/v1/channels/reset/messages?wait=30s&after="+after)
	n.waitingPolls(1)
	c.SetLinger(0)
	c.Close()
	id := n.publish("reset", `"during"`)
	eventually(t, 5*time.Second, "the reset is noticed", func() bool { return n.ends("poll", "reset") == 1 })
	a := n.poll("reset", "wait=5s&after="+after)
	if len(a.Messages) != 1 || a.Messages[0].ID != id || string(a.Messages[0].Data) != `"during"` {
		t.Fatalf("retry got %+v, want the message %s", a, id)
	}
}

// A client may send its request, half-close, and wait for the answer: it
// must get the whole response when a message arrives later.
func TestPollHalfClosedClientGetsResponse(t *testing.T) {
	n := startNode(t, nil)
	after := n.publish("half", `0`)
	c := rawGET(t, n.addr(), "/v1/channels/half/messages?wait=30s&after="+after)
	defer c.Close()
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	n.waitingPolls(1)
	// The server sees the FIN and probes with an informational response;
	// the client reading it proves the probe happened before the message.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	probe, err := http.ReadResponse(br, nil)
	if err != nil || probe.StatusCode != http.StatusProcessing {
		t.Fatalf("first response: %v, %v; want the 102 probe", probe, err)
	}
	id := n.publish("half", `{"late":true}`)
	resp := readFinal(t, br)
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v (got %q)", err, body)
	}
	var a pollAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	if resp.StatusCode != 200 || len(a.Messages) != 1 || a.Messages[0].ID != id {
		t.Fatalf("status %d body %s, want the message %s", resp.StatusCode, body, id)
	}
	eventually(t, 5*time.Second, "end counted as half-closed", func() bool { return n.ends("poll", "half-closed") == 1 })
}

// A client that fully closes or resets mid-wait is noticed long before its
// wait ends, with the right reason.
func TestPollDepartureNoticedBeforeWaitEnds(t *testing.T) {
	for _, tc := range []struct {
		how, reason string
	}{{"close", "closed"}, {"reset", "reset"}} {
		t.Run(tc.how, func(t *testing.T) {
			n := startNode(t, nil)
			c := rawGET(t, n.addr(), "/v1/channels/gone/messages?wait=60s")
			n.waitingPolls(1)
			start := time.Now()
			if tc.how == "reset" {
				c.SetLinger(0)
			}
			c.Close()
			eventually(t, 10*time.Second, "departure noticed", func() bool { return n.ends("poll", tc.reason) == 1 })
			if el := time.Since(start); el > 2*time.Second {
				t.Fatalf("noticed after %v; the wait was 60s and the truth is about a millisecond", el)
			}
			n.waitingPolls(0)
		})
	}
}

// 1,000 clients that leave mid-wait leave no goroutine behind.
func TestPollAbortsLeakNothing(t *testing.T) {
	n := startNode(t, nil)
	n.poll("warm", "wait=0") // the server's own goroutines exist before the snapshot
	http.DefaultClient.CloseIdleConnections()
	eventually(t, 5*time.Second, "idle server", func() bool { return n.metric("tether_http_waiting_requests", nil) == 0 })
	ignore := goleak.IgnoreCurrent()
	const total, batch = 1000, 50
	for i := 0; i < total; i += batch {
		conns := make([]*net.TCPConn, batch)
		for j := range conns {
			conns[j] = rawGET(t, n.addr(), fmt.Sprintf("/v1/channels/abort-%d/messages?wait=60s", j))
		}
		// Abort only once all of the batch is parked, so each abort hits a
		// waiting request rather than one still being read.
		n.waitingPolls(batch)
		for j, c := range conns {
			if j%2 == 0 {
				c.SetLinger(0)
			}
			c.Close()
		}
		eventually(t, 10*time.Second, "batch noticed", func() bool {
			return n.ends("poll", "closed")+n.ends("poll", "reset") == float64(i+batch)
		})
	}
	if c, r := n.ends("poll", "closed"), n.ends("poll", "reset"); c != total/2 || r != total/2 {
		t.Fatalf("ends closed=%v reset=%v, want %d each", c, r, total/2)
	}
	goleak.VerifyNone(t, ignore)
}

func TestIdempotencyKey(t *testing.T) {
	n := startNode(t, nil)
	post := func(body string) (*http.Response, publishAnswer) {
		req, _ := http.NewRequest("POST", n.base+"/v1/channels/orders/messages", strings.NewReader(body))
		req.Header.Set("Idempotency-Key", "order-42")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var a publishAnswer
		decodeStatus(t, resp, http.StatusCreated, &a)
		return resp, a
	}
	r1, a1 := post(`{"order":42}`)
	r2, a2 := post(`{"order":42}`)
	if a1.ID != a2.ID {
		t.Fatalf("retry got id %s, want the original %s", a2.ID, a1.ID)
	}
	if r1.Header.Get("Idempotent-Replayed") != "" || r2.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("Idempotent-Replayed: first %q second %q", r1.Header.Get("Idempotent-Replayed"), r2.Header.Get("Idempotent-Replayed"))
	}
	if a := n.poll("orders", "after=0&wait=0"); len(a.Messages) != 1 {
		t.Fatalf("channel holds %d messages, want 1", len(a.Messages))
	}
}

func TestGapAfterRetention(t *testing.T) {
	n := startNode(t, func(c *tether.Config) { c.Retention.MaxMessages = 3 })
	var ids []string
	for i := 0; i < 10; i++ {
		ids = append(ids, n.publish("trim", fmt.Sprint(i)))
	}
	a := n.poll("trim", "wait=0&after="+ids[0])
	if !a.Gap || a.Earliest != ids[7] || strings.Join(a.datas(), ",") != "7,8,9" {
		t.Fatalf("behind retention: %+v, want gap with earliest %s and 7,8,9", a, ids[7])
	}
	if a := n.poll("trim", "wait=0&after=0"); a.Gap || strings.Join(a.datas(), ",") != "7,8,9" {
		t.Fatalf("after=0: %+v, want 7,8,9 without gap", a)
	}
	if a := n.poll("trim", "wait=0&after="+ids[6]); a.Gap {
		t.Fatalf("after %s (just before earliest): %+v, want no gap", ids[6], a)
	}
}

// A long-poll that will wait answers everything the channel held when it
// came, although the shared reads hold an older empty page (which its
// first read may take, since a wait follows) and an older page with fewer
// messages (which the read after the wait must not take).
func TestLongPollAnswersAllAfterStalePages(t *testing.T) {
	n := startNode(t, nil)
	url := n.base + "/v1/channels/stale/messages"
	read := func(q string) []any {
		t.Helper()
		status, _, body, _ := httpDo(t, "GET", url+q, "", "")
		var page struct{ Messages []any }
		if status != 200 || json.Unmarshal(body, &page) != nil {
			t.Fatalf("GET %s: %d %s", q, status, body)
		}
		return page.Messages
	}
	publish := func(v int) {
		t.Helper()
		if status, _, body, _ := httpDo(t, "POST", url, "", fmt.Sprint(v)); status != 201 {
			t.Fatalf("publish: %d %s", status, body)
		}
	}
	if got := read("?after=0&wait=0"); len(got) != 0 { // an empty page, shared for a second
		t.Fatalf("empty channel: %v", got)
	}
	publish(1)
	if got := read("?after=0&wait=0"); len(got) != 1 { // a page of one message
		t.Fatalf("after one publish: %v", got)
	}
	publish(2)
	publish(3)
	if got := read("?after=0&wait=10s"); len(got) != 3 {
		t.Fatalf("a waiting long-poll after three publishes answered %d messages, want 3: %v", len(got), got)
	}
}

// parkedGET sends an HTTP/1.1 long-poll of channel after the cursor on c
// (a new connection when c is nil) and returns it.
func parkedGET(t *testing.T, addr string, c net.Conn, channel, query string) net.Conn {
	t.Helper()
	if c == nil {
		var err error
		if c, err = net.Dial("tcp", addr); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := fmt.Fprintf(c, "GET /v1/channels/%s/messages?%s HTTP/1.1\r\nHost: %s\r\n\r\n", channel, query, addr); err != nil {
		t.Fatal(err)
	}
	return c
}

// readAnswer reads one final long-poll answer from br.
func readAnswer(t *testing.T, br *bufio.Reader) (*http.Response, pollAnswer) {
	t.Helper()
	resp := readFinal(t, br)
	defer resp.Body.Close()
	var a pollAnswer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatalf("answer: %v", err)
	}
	return resp, a
}

// settledGoroutines waits until the goroutine count is at most want and
// returns it, or the count after the deadline.
func settledGoroutines(want int) int {
	deadline := time.Now().Add(5 * time.Second)
	for {
		g := runtime.NumGoroutine()
		if g <= want || time.Now().After(deadline) {
			return g
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A long-poll that waits over HTTP/1.1 holds no goroutine (net/http's
// connection goroutine is gone with the hijack, and conn.Ready watches
// the socket); once answered, the same TCP connection serves the next
// request.
func TestPollParkedHoldsNoGoroutine(t *testing.T) {
	n := startNode(t, nil)
	after := n.publish("park", `0`)
	br0 := bufio.NewReader(parkedGET(t, n.addr(), nil, "park", "wait=0"))
	readAnswer(t, br0) // the server's own goroutines exist before the count
	const total = 200
	g0 := runtime.NumGoroutine()
	conns := make([]net.Conn, total)
	brs := make([]*bufio.Reader, total)
	for i := range conns {
		conns[i] = parkedGET(t, n.addr(), nil, "park", "wait=60s&after="+after)
		brs[i] = bufio.NewReader(conns[i])
		defer conns[i].Close()
	}
	n.waitingPolls(total)
	// Constants: the channel's store waiter, conn.Ready's epoll drain.
	const slack = 4
	if g := settledGoroutines(g0 + slack); g > g0+slack {
		t.Fatalf("%d goroutines with %d long-polls parked, %d before: %.2f per long-poll, want none", g, total, g0, float64(g-g0)/total)
	}
	id := n.publish("park", `"news"`)
	for i, br := range brs {
		resp, a := readAnswer(t, br)
		if resp.StatusCode != 200 || len(a.Messages) != 1 || a.Messages[0].ID != id || resp.Close {
			t.Fatalf("conn %d: status %d close %v answer %+v, want the message %s on a kept-alive connection", i, resp.StatusCode, resp.Close, a, id)
		}
		if resp.Header.Get("Vary") != "Origin" || resp.Header.Get("Content-Type") != "application/json" ||
			resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Date") == "" || resp.ContentLength <= 0 {
			t.Fatalf("conn %d: headers %v", i, resp.Header)
		}
	}
	// The same connections serve the next poll, parked again.
	for _, c := range conns {
		parkedGET(t, n.addr(), c, "park", "wait=60s&after="+id)
	}
	n.waitingPolls(total)
	id2 := n.publish("park", `"more"`)
	for i, br := range brs {
		if _, a := readAnswer(t, br); len(a.Messages) != 1 || a.Messages[0].ID != id2 {
			t.Fatalf("conn %d: second answer %+v, want the message %s", i, a, id2)
		}
	}
	if c := n.ends("poll", "completed"); c < 2*total {
		t.Fatalf("%v long-polls ended completed, want %d", c, 2*total)
	}
}

// A request pipelined behind a waiting long-poll is served after its
// answer, on the same connection.
func TestPollPipelinedAfterParked(t *testing.T) {
	n := startNode(t, nil)
	after := n.publish("pipe", `1`)
	c, err := net.Dial("tcp", n.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	host := n.addr()
	req := fmt.Sprintf("GET /v1/channels/pipe/messages?wait=30s&after=%s HTTP/1.1\r\nHost: %s\r\n\r\n", after, host) +
		fmt.Sprintf("GET /v1/channels/pipe/messages?wait=0&after=0 HTTP/1.1\r\nHost: %s\r\n\r\n", host)
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	n.waitingPolls(1)
	id := n.publish("pipe", `2`)
	br := bufio.NewReader(c)
	if _, a := readAnswer(t, br); len(a.Messages) != 1 || a.Messages[0].ID != id {
		t.Fatalf("first answer %+v, want the message %s", a, id)
	}
	if _, a := readAnswer(t, br); len(a.Messages) != 2 || a.Next != id {
		t.Fatalf("pipelined answer %+v, want both messages", a)
	}
	// And the connection still serves.
	parkedGET(t, host, c, "pipe", "wait=0&after="+after)
	if _, a := readAnswer(t, br); len(a.Messages) != 1 {
		t.Fatalf("third answer %+v", a)
	}
}

// A shutdown answers every parked long-poll with the keepalive and its
// reconnect hint, and closes their connections.
func TestShutdownAnswersParkedPolls(t *testing.T) {
	n := startNode(t, func(c *tether.Config) { c.ShutdownSpread = time.Second })
	after := n.publish("many", `1`)
	const total = 1000
	brs := make([]*bufio.Reader, total)
	for i := range brs {
		c := parkedGET(t, n.addr(), nil, "many", "wait=60s&after="+after)
		defer c.Close()
		brs[i] = bufio.NewReader(c)
	}
	n.waitingPolls(total)
	start := time.Now()
	n.stop()
	if el := time.Since(start); el > 8*time.Second {
		t.Fatalf("stop took %v", el)
	}
	for i, br := range brs {
		resp := readFinal(t, br)
		var a struct {
			pollAnswer
			ReconnectAfterMS *int64 `json:"reconnect_after_ms"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
			t.Fatalf("conn %d: %v", i, err)
		}
		if resp.StatusCode != 200 || len(a.Messages) != 0 || a.Next != after || a.ReconnectAfterMS == nil {
			t.Fatalf("conn %d: status %d close %v answer %+v, want the keepalive with a hint", i, resp.StatusCode, resp.Close, a)
		}
		if _, err := br.ReadByte(); err != io.EOF {
			t.Fatalf("conn %d: after the answer: %v, want EOF", i, err)
		}
	}
}

// tlsNode starts a node serving TLS with a fresh self-signed certificate
// and returns it with the pool that trusts it.
func tlsNode(t *testing.T) (*node, *x509.CertPool) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, func(c *tether.Config) { c.TLSCertFile, c.TLSKeyFile = certFile, keyFile })
	n.base = "https://" + n.addr()
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return n, pool
}

// Over TLS (HTTP/1.1: the node's own TLS listener offers no h2), a
// long-poll parks (the hijack works on a tls.Conn) and keeps its
// connection, and SSE streams.
func TestPollOverTLS(t *testing.T) {
	n, pool := tlsNode(t)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer hc.CloseIdleConnections()
	pub := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer pub.CloseIdleConnections()
	checkWaitAndStream(t, n.base, hc, pub, "HTTP/1.1", n.waitingPolls)
}

// HTTP/2 cannot hijack: through Handler on a server of one's own that
// speaks h2, a long-poll and an SSE stream wait on their handler's
// goroutine, as before.
func TestPollOverHTTP2(t *testing.T) {
	n := startNode(t, nil)
	ts := httptest.NewUnstartedServer(n.srv.Handler())
	ts.EnableHTTP2 = true
	ts.Config.ConnContext = tether.ConnContext
	ts.StartTLS()
	defer ts.Close()
	hc := ts.Client()
	checkWaitAndStream(t, ts.URL, hc, hc, "HTTP/2.0", n.waitingPolls)
}

// checkWaitAndStream: two long-polls that wait, answered by a publish, on
// one connection, and an SSE event, all over proto.
func checkWaitAndStream(t *testing.T, base string, hc, pub *http.Client, proto string, waiting func(int)) {
	t.Helper()
	publish := func(body string) string {
		t.Helper()
		resp, err := pub.Post(base+"/v1/channels/tls/messages", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var a publishAnswer
		decodeStatus(t, resp, http.StatusCreated, &a)
		return a.ID
	}
	after := publish(`0`)
	var reused []bool
	for i := range 2 {
		got := make(chan pollAnswer, 1)
		go func() {
			req, _ := http.NewRequest("GET", base+"/v1/channels/tls/messages?wait=20s&after="+after, nil)
			req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
				GotConn: func(ci httptrace.GotConnInfo) { reused = append(reused, ci.Reused) },
			}))
			resp, err := hc.Do(req)
			if err != nil {
				t.Error(err)
				close(got)
				return
			}
			defer resp.Body.Close()
			if resp.Proto != proto {
				t.Errorf("answered over %s, want %s", resp.Proto, proto)
			}
			var a pollAnswer
			decodeStatus(t, resp, 200, &a)
			got <- a
		}()
		waiting(1)
		after = publish(fmt.Sprintf(`%d`, i+1))
		if a, ok := <-got; !ok || len(a.Messages) != 1 || a.Messages[0].ID != after {
			t.Fatalf("poll %d: %+v, want the message %s", i, a, after)
		}
	}
	if len(reused) != 2 || !reused[1] {
		t.Fatalf("connection reuse %v, want the second poll on the first's connection", reused)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/channels/tls/events", nil)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Proto != proto || resp.StatusCode != 200 {
		t.Fatalf("SSE over %s: %d", resp.Proto, resp.StatusCode)
	}
	id := publish(`"sse"`)
	s := &sseReader{br: bufio.NewReader(resp.Body)}
	if ev := s.next(t); ev.id != id {
		t.Fatalf("SSE event %+v, want %s", ev, id)
	}
}

// A connection whose parked long-poll was answered waits for its next
// request outside net/http; a shutdown closes it all the same, as
// http.Server.Shutdown closes its idle connections.
func TestShutdownClosesAnsweredConnections(t *testing.T) {
	n := startNode(t, nil)
	after := n.publish("kept", `1`)
	c := parkedGET(t, n.addr(), nil, "kept", "wait=30s&after="+after)
	defer c.Close()
	n.waitingPolls(1)
	n.publish("kept", `2`)
	br := bufio.NewReader(c)
	if resp, a := readAnswer(t, br); resp.Close || len(a.Messages) != 1 {
		t.Fatalf("answer %+v close %v, want a message on a kept-alive connection", a, resp.Close)
	}
	n.stop()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after shutdown: %v, want EOF", err)
	}
}

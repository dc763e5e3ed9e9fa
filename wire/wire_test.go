package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"
	"unicode/utf8"
)

// The golden bytes below are what protocol/frame.go and protocol/worker.go
// produce today (same field order, same omissions), and the examples of
// docs/protocol.md.

func TestEncodeServerFrames(t *testing.T) {
	tm := time.Date(2026, 11, 22, 0, 0, 0, 100_000_000, time.UTC)
	tests := []struct {
		name  string
		frame any
		want  string
	}{
		{"reply subscribe", Reply{Type: TypeReply, ID: "c1", OK: true, Cursor: "7"}, `{"type":"reply","id":"c1","ok":true,"cursor":"7"}`},
		{"reply duplicate", Reply{Type: TypeReply, ID: "c3", OK: true, Cursor: "7", Duplicate: true}, `{"type":"reply","id":"c3","ok":true,"cursor":"7","duplicate":true}`},
		{"reply bare", Reply{Type: TypeReply, ID: "c2", OK: true}, `{"type":"reply","id":"c2","ok":true}`},
		{"error request", ErrorFrame{Type: TypeError, ID: "c1", Code: CodeBadCursor, Message: "m"}, `{"type":"error","id":"c1","code":"bad_cursor","message":"m"}`},
		{"error channel", ErrorFrame{Type: TypeError, Code: CodeUnavailable, Message: "m", Channel: "news"}, `{"type":"error","code":"unavailable","message":"m","channel":"news"}`},
		{"error slow", ErrorFrame{Type: TypeError, Code: CodeSlowConsumer, Message: "m", Cursors: map[string]string{"a": "1", "b": "2"}},
			`{"type":"error","code":"slow_consumer","message":"m","cursors":{"a":"1","b":"2"}}`},
		{"message", Message{Type: TypeMessage, Channel: "news", Cursor: "8", Data: json.RawMessage(`{"title":"hi"}`), Time: tm},
			`{"type":"message","channel":"news","cursor":"8","data":{"title":"hi"},"time":"2026-11-22T00:00:00.1Z"}`},
		{"gap", Gap{Type: TypeGap, Channel: "news", After: "2", Earliest: "5"}, `{"type":"gap","channel":"news","after":"2","earliest":"5"}`},
		{"ping", Ping{Type: TypePing, ID: "s1"}, `{"type":"ping","id":"s1"}`},
		{"pong", Ping{Type: TypePong, ID: "c4"}, `{"type":"pong","id":"c4"}`},
		{"shutdown", Shutdown{Type: TypeShutdown, ReconnectAfterMS: 1234}, `{"type":"shutdown","reconnect_after_ms":1234}`},
		{"shutdown zero", Shutdown{Type: TypeShutdown}, `{"type":"shutdown","reconnect_after_ms":0}`},
		{"job", JobFrame{Type: TypeJob, Job: "j1", JobType: "resize", Payload: json.RawMessage(`{"ms":500}`), Attempt: 2,
			Deadline: time.Date(2026, 11, 22, 0, 10, 0, 0, time.UTC), LeaseUntil: time.Date(2026, 11, 22, 0, 0, 3, 0, time.UTC), Channel: "job.j1"},
			`{"type":"job","job":"j1","job_type":"resize","payload":{"ms":500},"attempt":2,"deadline":"2026-11-22T00:10:00Z","lease_until":"2026-11-22T00:00:03Z","channel":"job.j1"}`},
		{"job no deadline", JobFrame{Type: TypeJob, Job: "j1", JobType: "x", Payload: json.RawMessage(`null`), Attempt: 1, Channel: "job.j1"},
			`{"type":"job","job":"j1","job_type":"x","payload":null,"attempt":1,"channel":"job.j1"}`},
		{"job.cancel", JobSignal{Type: TypeJobCancel, Job: "j1", Attempt: 2, Reason: CancelAPI}, `{"type":"job.cancel","job":"j1","attempt":2,"reason":"api"}`},
		{"job.fenced", JobSignal{Type: TypeJobFenced, Job: "j1", Attempt: 2, Reason: FenceCancelGrace}, `{"type":"job.fenced","job":"j1","attempt":2,"reason":"cancel-grace"}`},
		{"job.fenced no reason", JobSignal{Type: TypeJobFenced, Job: "j1", Attempt: 2}, `{"type":"job.fenced","job":"j1","attempt":2}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Encode(tt.frame)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Fatalf("Encode = %s\nwant     %s", b, tt.want)
			}
			got, err := DecodeServer(b)
			if err != nil {
				t.Fatalf("DecodeServer(%s): %v", b, err)
			}
			if !equalFrames(got, tt.frame) {
				t.Fatalf("DecodeServer(%s) = %#v, want %#v", b, got, tt.frame)
			}
		})
	}
}

// equalFrames compares frames by their encoding, which is what matters on
// the wire (times compare by instant, raw JSON by bytes).
func equalFrames(a, b any) bool {
	if reflect.TypeOf(a) != reflect.TypeOf(b) {
		return false
	}
	ea, err1 := Encode(a)
	eb, err2 := Encode(b)
	return err1 == nil && err2 == nil && string(ea) == string(eb)
}

func TestEncodeClientFrames(t *testing.T) {
	tests := []struct {
		name  string
		frame ClientFrame
		want  string
	}{
		{"subscribe", ClientFrame{ID: "c1", Type: TypeSubscribe, Channel: "news", After: Cursor("0")}, `{"id":"c1","type":"subscribe","channel":"news","after":"0"}`},
		{"subscribe from now", ClientFrame{ID: "c1", Type: TypeSubscribe, Channel: "news"}, `{"id":"c1","type":"subscribe","channel":"news"}`},
		{"subscribe after empty", ClientFrame{ID: "c1", Type: TypeSubscribe, Channel: "news", After: Cursor("")}, `{"id":"c1","type":"subscribe","channel":"news","after":""}`},
		{"unsubscribe", ClientFrame{ID: "c2", Type: TypeUnsubscribe, Channel: "news"}, `{"id":"c2","type":"unsubscribe","channel":"news"}`},
		{"publish", ClientFrame{ID: "c3", Type: TypePublish, Channel: "news", Data: json.RawMessage(`{"a":1}`), IdempotencyKey: "k"},
			`{"id":"c3","type":"publish","channel":"news","data":{"a":1},"idempotency_key":"k"}`},
		{"publish null", ClientFrame{ID: "c3", Type: TypePublish, Channel: "news", Data: json.RawMessage(`null`)}, `{"id":"c3","type":"publish","channel":"news","data":null}`},
		{"ping", ClientFrame{ID: "c4", Type: TypePing}, `{"id":"c4","type":"ping"}`},
		{"pong", ClientFrame{ID: "s1", Type: TypePong}, `{"id":"s1","type":"pong"}`},
		{"hello", ClientFrame{Type: TypeHello, Session: "device-42"}, `{"type":"hello","session":"device-42"}`},
		{"bye", ClientFrame{Type: TypeBye}, `{"type":"bye"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Encode(tt.frame)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Fatalf("Encode = %s\nwant     %s", b, tt.want)
			}
			got, err := DecodeClient(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.frame) {
				t.Fatalf("DecodeClient(%s) = %#v, want %#v", b, got, tt.frame)
			}
		})
	}
}

func TestEncodeWorkerRequests(t *testing.T) {
	tests := []struct {
		name  string
		frame WorkerRequest
		want  string
	}{
		{"worker", WorkerRequest{ID: "1", Type: TypeWorker, Worker: "w-1", Types: []string{"resize", "email"}, Concurrency: 4},
			`{"id":"1","type":"worker","worker":"w-1","types":["resize","email"],"concurrency":4}`},
		{"heartbeat empty", WorkerRequest{ID: "2", Type: TypeJobHeartbeat, Jobs: map[string]int{}}, `{"id":"2","type":"job.heartbeat","jobs":{}}`},
		{"heartbeat", WorkerRequest{ID: "2", Type: TypeJobHeartbeat, Jobs: map[string]int{"j1": 1}}, `{"id":"2","type":"job.heartbeat","jobs":{"j1":1}}`},
		{"progress", WorkerRequest{ID: "3", Type: TypeJobProgress, Job: "j1", Attempt: 1, Data: json.RawMessage(`{"percent":50}`)},
			`{"id":"3","type":"job.progress","job":"j1","attempt":1,"data":{"percent":50}}`},
		{"done result", WorkerRequest{ID: "4", Type: TypeJobDone, Job: "j1", Attempt: 1, Result: json.RawMessage(`{"slept_ms":500}`)},
			`{"id":"4","type":"job.done","job":"j1","attempt":1,"result":{"slept_ms":500}}`},
		{"done null result", WorkerRequest{ID: "4", Type: TypeJobDone, Job: "j1", Attempt: 1, Result: json.RawMessage(`null`)},
			`{"id":"4","type":"job.done","job":"j1","attempt":1,"result":null}`},
		{"done error", WorkerRequest{ID: "5", Type: TypeJobDone, Job: "j1", Attempt: 1, Error: "text"}, `{"id":"5","type":"job.done","job":"j1","attempt":1,"error":"text"}`},
		{"done canceled", WorkerRequest{ID: "6", Type: TypeJobDone, Job: "j1", Attempt: 1, Canceled: true}, `{"id":"6","type":"job.done","job":"j1","attempt":1,"canceled":true}`},
		{"release", WorkerRequest{ID: "7", Type: TypeJobRelease, Job: "j1", Attempt: 1}, `{"id":"7","type":"job.release","job":"j1","attempt":1}`},
		{"drain", WorkerRequest{ID: "8", Type: TypeDrain}, `{"id":"8","type":"drain"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Encode(tt.frame)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Fatalf("Encode = %s\nwant     %s", b, tt.want)
			}
			got, err := DecodeWorker(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.frame) {
				t.Fatalf("DecodeWorker(%s) = %#v, want %#v", b, got, tt.frame)
			}
		})
	}
}

// TestDecodeClient holds the cases protocol.Decode is tested with: the
// server's acceptance rules move here unchanged.
func TestDecodeClient(t *testing.T) {
	tests := []struct {
		in      string
		want    ClientFrame
		wantErr error
	}{
		{in: `{"id":"c1","type":"subscribe","channel":"news","after":"0"}`, want: ClientFrame{ID: "c1", Type: "subscribe", Channel: "news", After: Cursor("0")}},
		{in: `{"id":"c1","type":"subscribe","channel":"news"}`, want: ClientFrame{ID: "c1", Type: "subscribe", Channel: "news"}},
		{in: ` {"type":"hello","session":"k","extra":[1,2]} `, want: ClientFrame{Type: "hello", Session: "k"}},
		{in: `{"id":"p","type":"publish","channel":"a","data":{"x":[1]},"idempotency_key":"k"}`,
			want: ClientFrame{ID: "p", Type: "publish", Channel: "a", Data: json.RawMessage(`{"x":[1]}`), IdempotencyKey: "k"}},
		{in: `{"id":"p","type":"publish","channel":"a","data":null}`, want: ClientFrame{ID: "p", Type: "publish", Channel: "a", Data: json.RawMessage(`null`)}},
		{in: `{"id":"c1","type":"subscribe","channel":7}`, want: ClientFrame{ID: "c1", Type: "subscribe"}, wantErr: ErrBadField},
		{in: `{"id":"c1","type":"subscribe","after":0}`, want: ClientFrame{ID: "c1", Type: "subscribe"}, wantErr: ErrBadField},
		{in: `[1]`, wantErr: ErrBadFrame},
		{in: `"x"`, wantErr: ErrBadFrame},
		{in: ``, wantErr: ErrBadFrame},
		{in: `{"id":`, wantErr: ErrBadFrame},
		{in: `{"id":"a"} {"id":"b"}`, wantErr: ErrBadFrame},
		{in: "\x00\xff", wantErr: ErrBadFrame},
	}
	for _, tt := range tests {
		got, err := DecodeClient([]byte(tt.in))
		if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
			t.Errorf("DecodeClient(%q) error = %v, want %v", tt.in, err, tt.wantErr)
			continue
		}
		if errors.Is(err, ErrBadField) {
			// Only the fields before and beside the bad one are promised.
			if got.ID != tt.want.ID || got.Type != tt.want.Type {
				t.Errorf("DecodeClient(%q) = %#v, want id and type of %#v", tt.in, got, tt.want)
			}
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("DecodeClient(%q) = %#v, want %#v", tt.in, got, tt.want)
		}
	}
}

func TestDecodeWorkerBadField(t *testing.T) {
	got, err := DecodeWorker([]byte(`{"id":"9","type":"job.done","job":"j","attempt":"1"}`))
	if !errors.Is(err, ErrBadField) {
		t.Fatalf("error = %v, want ErrBadField", err)
	}
	if got.ID != "9" || got.Type != TypeJobDone || got.Job != "j" {
		t.Fatalf("got %#v, want id, type and job decoded", got)
	}
}

func TestPeek(t *testing.T) {
	tests := []struct {
		in      string
		want    Head
		wantErr error
	}{
		{`{"type":"job.done","id":"4","result":{"a":1}}`, Head{Type: TypeJobDone, ID: "4"}, nil},
		{`{"type":"ping"}`, Head{Type: TypePing}, nil},
		{`{"type":3,"id":"x"}`, Head{ID: "x"}, ErrBadField},
		{`nope`, Head{}, ErrBadFrame},
	}
	for _, tt := range tests {
		got, err := Peek([]byte(tt.in))
		if got != tt.want || !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
			t.Errorf("Peek(%s) = %+v, %v; want %+v, %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestDecodeServerUnknownAndBad(t *testing.T) {
	got, err := DecodeServer([]byte(` {"type":"future","x":1} `))
	if err != nil {
		t.Fatal(err)
	}
	u, ok := got.(Unknown)
	if !ok || u.Type != "future" || string(u.Raw) != `{"type":"future","x":1}` {
		t.Fatalf("got %#v, want Unknown future", got)
	}
	if _, err := DecodeServer([]byte(`{"type":"reply","ok":"yes"}`)); !errors.Is(err, ErrBadField) {
		t.Fatalf("error = %v, want ErrBadField", err)
	}
	if _, err := DecodeServer([]byte(`{"type":"reply"`)); !errors.Is(err, ErrBadFrame) {
		t.Fatalf("error = %v, want ErrBadFrame", err)
	}
}

func TestErrorFrameIsError(t *testing.T) {
	var err error = &ErrorFrame{Type: TypeError, ID: "1", Code: CodeFenced, Message: "drop it"}
	if got, want := err.Error(), "tether: fenced: drop it"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
	ef, ok := errors.AsType[*ErrorFrame](err)
	if !ok || ef.Code != CodeFenced {
		t.Fatalf("errors.AsType = %v, %v", ef, ok)
	}
}

func TestRetryable(t *testing.T) {
	for _, c := range []Code{CodeUnavailable, CodeInternal, CodeTooManyRequests} {
		if !c.Retryable() {
			t.Errorf("%s.Retryable() = false, want true", c)
		}
	}
	for _, c := range []Code{CodeFenced, CodeBadRequest, CodeBadCursor, CodeCursorAhead, CodeNotWorker, CodeSlowConsumer} {
		if c.Retryable() {
			t.Errorf("%s.Retryable() = true, want false", c)
		}
	}
}

func TestValid(t *testing.T) {
	tests := []struct {
		fn   func(string) bool
		name string
		in   string
		want bool
	}{
		{ValidChannel, "channel", "news", true},
		{ValidChannel, "channel", "job.01jb4m:x-y_z", true},
		{ValidChannel, "channel", "9", true},
		{ValidChannel, "channel", "", false},
		{ValidChannel, "channel", ".news", false},
		{ValidChannel, "channel", "-news", false},
		{ValidChannel, "channel", "new s", false},
		{ValidChannel, "channel", "news/x", false},
		{ValidChannel, "channel", string(make([]byte, 129)), false},
		{ValidKey, "key", "k", true},
		{ValidKey, "key", " ~", true},
		{ValidKey, "key", "", false},
		{ValidKey, "key", "a\nb", false},
		{ValidKey, "key", "é", false},
		{ValidID, "id", "x", true},
		{ValidID, "id", "", false},
	}
	for _, tt := range tests {
		if got := tt.fn(tt.in); got != tt.want {
			t.Errorf("Valid %s(%q) = %v, want %v", tt.name, tt.in, got, tt.want)
		}
	}
	long := make([]byte, MaxChannelLen)
	for i := range long {
		long[i] = 'a'
	}
	if !ValidChannel(string(long)) || ValidChannel(string(long)+"a") {
		t.Error("ValidChannel: the 128-byte bound is off")
	}
}

func TestIsRequest(t *testing.T) {
	for _, ty := range []string{TypeSubscribe, TypeUnsubscribe, TypePublish, TypePing, TypeWorker, TypeJobHeartbeat, TypeJobProgress, TypeJobDone, TypeJobRelease, TypeDrain} {
		if !IsRequest(ty) {
			t.Errorf("IsRequest(%q) = false", ty)
		}
	}
	for _, ty := range []string{TypePong, TypeHello, TypeBye, TypeReply, "x"} {
		if IsRequest(ty) {
			t.Errorf("IsRequest(%q) = true", ty)
		}
	}
	if IsWorkerRequest(TypePublish) {
		t.Error("IsWorkerRequest(publish) = true")
	}
}

func FuzzDecodeServer(f *testing.F) {
	for _, s := range []string{
		`{"type":"reply","id":"c1","ok":true,"cursor":"7"}`,
		`{"type":"message","channel":"news","cursor":"8","data":{"title":"hi"},"time":"2026-11-22T00:00:00.1Z"}`,
		`{"type":"job","job":"j","job_type":"t","payload":null,"attempt":1,"channel":"job.j"}`,
		`{"type":"error","code":"slow_consumer","message":"m","cursors":{"a":"1"}}`,
		`[`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := DecodeServer(b)
		if err != nil {
			if !errors.Is(err, ErrBadFrame) && !errors.Is(err, ErrBadField) {
				t.Fatalf("error %v is neither ErrBadFrame nor ErrBadField", err)
			}
			return
		}
		if _, ok := v.(Unknown); ok {
			return
		}
		// A decoded known frame encodes, and decodes again to the same.
		out, err := Encode(v)
		if err != nil {
			t.Fatalf("Encode(%#v): %v", v, err)
		}
		v2, err := DecodeServer(out)
		if err != nil || !equalFrames(v, v2) {
			t.Fatalf("round trip of %s: %#v then %#v (%v)", out, v, v2, err)
		}
	})
}

func FuzzDecodeClient(f *testing.F) {
	for _, s := range []string{
		`{"id":"c1","type":"subscribe","channel":"news","after":"0"}`,
		`{"id":"c3","type":"publish","channel":"news","data":{"a":1},"idempotency_key":"k"}`,
		`{"id":"4","type":"job.done","job":"j1","attempt":1,"result":{"slept_ms":500}}`,
		`{`, `nope`,
		"{\"id\":\"c3\",\"type\":\"publish\",\"channel\":\"a\",\"data\":\"\xff\"}",
		"{\"id\":\"\xed\xa0\x80\",\"type\":\"ping\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		valid := utf8.Valid(b)
		for _, dec := range []func([]byte) error{
			func(b []byte) error {
				f, err := DecodeClient(b)
				if err == nil && !utf8.Valid(f.Data) {
					t.Fatalf("DecodeClient accepted data %q, not UTF-8", f.Data)
				}
				return err
			},
			func(b []byte) error { _, err := DecodeWorker(b); return err },
			func(b []byte) error { _, err := Peek(b); return err },
			func(b []byte) error { _, err := DecodeRequest(b); return err },
		} {
			err := dec(b)
			if err != nil && !errors.Is(err, ErrBadFrame) && !errors.Is(err, ErrBadField) {
				t.Fatalf("error %v is neither ErrBadFrame nor ErrBadField", err)
			}
			if !valid && !errors.Is(err, ErrInvalidUTF8) && bytes.HasPrefix(bytes.TrimSpace(b), []byte("{")) {
				t.Fatalf("%q is not UTF-8: error %v, want ErrInvalidUTF8", b, err)
			}
		}
		if ValidJSON(b) != (valid && json.Valid(b)) {
			t.Fatalf("ValidJSON(%q) = %v", b, ValidJSON(b))
		}
	})
}

func TestDecodeRequest(t *testing.T) {
	tests := []struct {
		in         string
		wantType   string
		wantWorker bool
		wantErr    error
	}{
		{`{"id":"1","type":"publish","channel":"a","data":1}`, TypePublish, false, nil},
		{`{"id":"1","type":"job.heartbeat","jobs":{"j":1}}`, TypeJobHeartbeat, true, nil},
		{`{"id":"1","type":"job.done","job":"j","attempt":"x"}`, TypeJobDone, true, ErrBadField},
		{`{"id":"1","type":"subscribe","channel":1}`, TypeSubscribe, false, ErrBadField},
		{`{"id":"1","type":"x"}`, "x", false, nil},
		{`nope`, "", false, ErrBadFrame},
	}
	for _, tt := range tests {
		r, err := DecodeRequest([]byte(tt.in))
		if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
			t.Errorf("DecodeRequest(%s) error = %v, want %v", tt.in, err, tt.wantErr)
			continue
		}
		if r.Type != tt.wantType || (r.Worker != nil) != tt.wantWorker {
			t.Errorf("DecodeRequest(%s) = type %q, worker %v; want %q, %v", tt.in, r.Type, r.Worker != nil, tt.wantType, tt.wantWorker)
		}
	}
	r, _ := DecodeRequest([]byte(`{"id":"1","type":"job.heartbeat","jobs":{"j":2}}`))
	if r.ID != "1" || r.Worker.ID != "1" || r.Worker.Jobs["j"] != 2 {
		t.Errorf("DecodeRequest heartbeat = %+v / %+v", r.ClientFrame, r.Worker)
	}
}

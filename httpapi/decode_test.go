package httpapi

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var testLimits = limits{defaultWait: 25 * time.Second, maxWait: 2 * time.Minute, defaultLimit: 100, maxLimit: 1000}

func TestDecodeRead(t *testing.T) {
	for _, tc := range []struct {
		query, lastEventID string
		wantCode           string
		wantAfter          string
		wantLatest         bool
		wantWait           time.Duration
		wantLimit          int
	}{
		{query: "", wantLatest: true, wantWait: 25 * time.Second, wantLimit: 100},
		{query: "after=0", wantAfter: "0", wantWait: 25 * time.Second, wantLimit: 100},
		{query: "after=17&wait=5s&limit=7", wantAfter: "17", wantWait: 5 * time.Second, wantLimit: 7},
		{query: "wait=1.5", wantLatest: true, wantWait: 1500 * time.Millisecond, wantLimit: 100},
		{query: "wait=0", wantLatest: true, wantWait: 0, wantLimit: 100},
		{query: "wait=2m", wantLatest: true, wantWait: 2 * time.Minute, wantLimit: 100},
		{query: "after=5", lastEventID: "9", wantAfter: "9", wantWait: 25 * time.Second, wantLimit: 100},
		{query: "wait=2m1s", wantCode: CodeBadWait},
		{query: "wait=-1", wantCode: CodeBadWait},
		{query: "wait=NaN", wantCode: CodeBadWait},
		{query: "wait=1e300", wantCode: CodeBadWait},
		{query: "limit=1001", wantCode: CodeBadLimit},
		{query: "limit=x", wantCode: CodeBadLimit},
		{query: "after=", wantCode: CodeBadCursor},
		{query: "after=a%20b", wantCode: CodeBadCursor},
		{query: "after=" + strings.Repeat("1", 257), wantCode: CodeBadCursor},
		{lastEventID: "\x00", wantCode: CodeBadCursor},
	} {
		q, err := url.ParseQuery(tc.query)
		if err != nil {
			t.Fatal(err)
		}
		p, e := decodeRead("ch", q, tc.lastEventID, testLimits)
		if tc.wantCode != "" {
			if e == nil || e.Code != tc.wantCode {
				t.Errorf("%q: error %v, want code %s", tc.query, e, tc.wantCode)
			}
			continue
		}
		if e != nil {
			t.Errorf("%q: unexpected error %v", tc.query, e)
			continue
		}
		if string(p.after) != tc.wantAfter || p.fromLatest != tc.wantLatest || p.wait != tc.wantWait || p.limit != tc.wantLimit {
			t.Errorf("%q: got after=%q latest=%v wait=%v limit=%d, want %q %v %v %d",
				tc.query, p.after, p.fromLatest, p.wait, p.limit, tc.wantAfter, tc.wantLatest, tc.wantWait, tc.wantLimit)
		}
	}
	if _, e := decodeRead("bad/name", nil, "", testLimits); e == nil || e.Code != CodeBadChannel {
		t.Errorf("bad channel: %v", e)
	}
}

func TestDecodeMessage(t *testing.T) {
	for in, want := range map[string]string{
		` {"a" : [1, 2]} `: `{"a":[1,2]}`,
		"\"line\\nbreak\"": "\"line\\nbreak\"",
		"\n\t42\n":         `42`,
		`null`:             `null`,
		`{"a":"b c"}`:      `{"a":"b c"}`,
		`{"a":[1,"x"]}`:    `{"a":[1,"x"]}`,
	} {
		got, e := decodeMessage([]byte(in))
		if e != nil || string(got) != want {
			t.Errorf("decodeMessage(%q) = %q, %v; want %q", in, got, e, want)
		}
	}
	for _, in := range []string{``, `  `, `{`, `1 2`, `{"a":1}}`, `nul`, "\"\x01\""} {
		if _, e := decodeMessage([]byte(in)); e == nil || e.Code != CodeInvalidJSON {
			t.Errorf("decodeMessage(%q): %v, want invalid_json", in, e)
		}
	}
}

// FuzzDecodeRead feeds arbitrary query strings and Last-Event-IDs through
// request decoding: it must never panic, and what it accepts must be within
// the limits.
func FuzzDecodeRead(f *testing.F) {
	f.Add("after=0&wait=25s&limit=10", "")
	f.Add("wait=1e9", "17")
	f.Add("after=%ff&limit=-1", "\xff")
	f.Fuzz(func(t *testing.T, query, lastEventID string) {
		q, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		p, e := decodeRead("ch", q, lastEventID, testLimits)
		if e != nil {
			if e.Status != 400 || e.Code == "" {
				t.Fatalf("error %+v has no 400 status or code", e)
			}
			return
		}
		if p.wait < 0 || p.wait > testLimits.maxWait || p.limit < 1 || p.limit > testLimits.maxLimit {
			t.Fatalf("accepted out-of-range params %+v", p)
		}
		if !p.fromLatest && (p.after == "" || len(p.after) > 256) {
			t.Fatalf("accepted cursor %q", p.after)
		}
	})
}

// FuzzDecodeMessage checks that an accepted publish body is one JSON value
// in valid UTF-8 (json.Valid alone accepts invalid bytes inside strings),
// stored as valid, compact UTF-8 JSON without raw newlines (it must fit one
// SSE data: line); and that a body that is not UTF-8 gets invalid_utf8.
func FuzzDecodeMessage(f *testing.F) {
	f.Add([]byte(`{"a": [1, 2, "x"]}`))
	f.Add([]byte("\"\\u2028\""))
	f.Add([]byte("[1,\n2]"))
	f.Add([]byte("\"\xff\xfe\""))
	f.Add([]byte("{\"k\":\"\xc3\x28\"}"))
	f.Add([]byte("\"\xed\xa0\x80\""))
	f.Fuzz(func(t *testing.T, body []byte) {
		got, e := decodeMessage(body)
		if e != nil {
			want := CodeInvalidJSON
			if !utf8.Valid(body) {
				want = CodeInvalidUTF8
			}
			if e.Code != want {
				t.Fatalf("%q: code %s, want %s", body, e.Code, want)
			}
			return
		}
		if !utf8.Valid(body) || !json.Valid(body) {
			t.Fatalf("accepted %q, which is not UTF-8 JSON", body)
		}
		if !utf8.Valid(got) || !json.Valid(got) || strings.ContainsAny(string(got), "\r\n") {
			t.Fatalf("accepted %q as %q", body, got)
		}
	})
}

package auth

import (
	"strings"
	"testing"

	"github.com/tether-run/tether/store"
)

func TestParsePattern(t *testing.T) {
	valid := []string{
		"news", "news.sport", "news.*", "news.>", ">", "*", "*.x", "*.*.>",
		"a-b_c:d.e", "Room.42", "chat.*.>", strings.Repeat("a", MaxPatternLen),
	}
	for _, s := range valid {
		p, err := ParsePattern(s)
		if err != nil {
			t.Errorf("ParsePattern(%q) = %v, want valid", s, err)
			continue
		}
		if p.String() != s {
			t.Errorf("String() = %q, want %q", p.String(), s)
		}
		// A pattern without wildcards is exactly a valid channel name.
		if !strings.ContainsAny(s, "*>") && !store.ValidChannel(s) {
			t.Errorf("literal pattern %q accepted but store.ValidChannel refuses it", s)
		}
	}
	invalid := []string{
		"", ".", "a.", ".a", "a..b", "a.>.b", ">.a", "a>", "a*", "a.b*", "*a",
		"a b", "a/b", "a.é", "-a", "_a", ":a", strings.Repeat("a", MaxPatternLen+1),
		"a.>>", "**",
	}
	for _, s := range invalid {
		if _, err := ParsePattern(s); err == nil {
			t.Errorf("ParsePattern(%q) = nil error, want invalid", s)
		}
	}
}

func TestPatternMatch(t *testing.T) {
	cases := []struct {
		pattern, channel string
		want             bool
	}{
		{"news", "news", true},
		{"news", "News", false}, // case matters
		{"news", "news.x", false},
		{"news", "new", false},
		{"news.*", "news.sport", true},
		{"news.*", "news", false},
		{"news.*", "news.sport.live", false},
		{"news.*", "news.", false}, // * never matches an empty token
		{"news.*", "news..", false},
		{"news.>", "news", false}, // a.> needs at least one more token
		{"news.>", "news.sport", true},
		{"news.>", "news.sport.live.now", true},
		{"news.>", "news.", false},
		{"news.>", "news.a..b", false},
		{"news.>", "news.a.", false},
		{"news.>", "newsroom.a", false},
		{"*", "news", true},
		{"*", "news.sport", false},
		{"*", "", false},
		{">", "a", true},
		{">", "a.b.c", true},
		{">", "", false},
		{">", "a..b", false},
		{"*.sport", "news.sport", true},
		{"*.sport", "news.sports", false},
		{"*.*", "a.b", true},
		{"*.*", "a", false},
		{"*.>", "a", false},
		{"*.>", "a.b", true},
		{"a.*.c", "a.b.c", true},
		{"a.*.c", "a.b.d", false},
		{"a.*.c", "a..c", false},
		{"a.b", "a.b.", false},
		{"A.*", "a.b", false},
	}
	for _, c := range cases {
		p, err := ParsePattern(c.pattern)
		if err != nil {
			t.Fatalf("ParsePattern(%q): %v", c.pattern, err)
		}
		if got := p.Match(c.channel); got != c.want {
			t.Errorf("%q.Match(%q) = %v, want %v", c.pattern, c.channel, got, c.want)
		}
	}
}

func TestPatternMatchAllocs(t *testing.T) {
	p, _ := ParsePattern("a.*.>")
	if n := testing.AllocsPerRun(100, func() { p.Match("a.b.c.d") }); n != 0 {
		t.Errorf("Match allocates %v times, want 0", n)
	}
}

func FuzzPattern(f *testing.F) {
	for _, s := range []string{"a.*.>", ">", "a..b", "*", "news.sport"} {
		f.Add(s, "a.b.c")
	}
	f.Fuzz(func(t *testing.T, pattern, channel string) {
		p, err := ParsePattern(pattern)
		if err != nil {
			return
		}
		if p.Match(channel) && strings.Contains(channel, "..") {
			t.Errorf("%q matched %q, which has an empty token", pattern, channel)
		}
		if !strings.ContainsAny(pattern, "*>") && p.Match(channel) != (pattern == channel) {
			t.Errorf("literal %q vs %q: Match = %v", pattern, channel, p.Match(channel))
		}
	})
}

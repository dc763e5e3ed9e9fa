package auth

import (
	"fmt"
	"strings"
)

// MaxPatternLen is the longest channel pattern, in bytes; the same bound
// as a channel name (store.MaxChannelLen).
const MaxPatternLen = 128

// Pattern is a channel pattern from a token's subscribe or publish list.
// Channel names are dot-separated tokens ("chat.room.42"). In a pattern,
// a token "*" matches exactly one token and a last token ">" matches one
// or more trailing tokens; any other token matches itself exactly, case
// included. Wildcards never match an empty token, so a channel with an
// empty token ("a..b", "a.") is matched by no pattern.
//
//	news.*     matches news.sport, not news or news.sport.live
//	news.>     matches news.sport and news.sport.live, not news
//	>          matches every channel (but see Principal.MaySubscribe for job channels)
type Pattern struct {
	raw  string
	toks []string
}

// ParsePattern parses and validates a channel pattern: 1 to
// MaxPatternLen bytes, non-empty dot-separated tokens, each "*", ">"
// (only last) or 1+ characters of the channel alphabet (ASCII letters,
// digits, '-', '_', ':'), the first character of the pattern a letter,
// digit or wildcard, as for a channel name.
func ParsePattern(s string) (Pattern, error) {
	if s == "" {
		return Pattern{}, fmt.Errorf("empty channel pattern")
	}
	if len(s) > MaxPatternLen {
		return Pattern{}, fmt.Errorf("channel pattern longer than %d bytes", MaxPatternLen)
	}
	toks := strings.Split(s, ".")
	for i, t := range toks {
		switch {
		case t == "":
			return Pattern{}, fmt.Errorf("channel pattern %q has an empty token", s)
		case t == ">":
			if i != len(toks)-1 {
				return Pattern{}, fmt.Errorf("channel pattern %q: '>' may only be the last token", s)
			}
		case t == "*":
		default:
			if err := checkLiteral(t, i == 0); err != nil {
				return Pattern{}, fmt.Errorf("channel pattern %q: %v", s, err)
			}
		}
	}
	return Pattern{raw: s, toks: toks}, nil
}

func checkLiteral(t string, first bool) error {
	for j := 0; j < len(t); j++ {
		c := t[j]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-' || c == '_' || c == ':':
			if first && j == 0 {
				return fmt.Errorf("must start with a letter, digit or wildcard")
			}
		case c == '*' || c == '>':
			return fmt.Errorf("wildcard %q must be a whole token", c)
		default:
			return fmt.Errorf("character %q not allowed", c)
		}
	}
	return nil
}

// String returns the pattern as written.
func (p Pattern) String() string { return p.raw }

// Match reports whether channel matches p. It does not allocate.
func (p Pattern) Match(channel string) bool {
	ch := channel
	for i, t := range p.toks {
		tok, rest, more := strings.Cut(ch, ".")
		if tok == "" {
			return false
		}
		switch t {
		case ">":
			return !hasEmptyToken(ch)
		case "*":
		default:
			if tok != t {
				return false
			}
		}
		if i == len(p.toks)-1 {
			return !more
		}
		if !more {
			return false
		}
		ch = rest
	}
	return false // unreachable for a parsed pattern: toks is never empty
}

// literalFirst reports whether p's first token is not a wildcard: only
// such a pattern can grant reading a server-owned channel.
func (p Pattern) literalFirst() bool {
	return len(p.toks) > 0 && p.toks[0] != "*" && p.toks[0] != ">"
}

func hasEmptyToken(s string) bool {
	return s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..")
}

// parsePatterns parses a claim's list; field names the claim in errors.
func parsePatterns(field string, list []string) ([]Pattern, error) {
	if len(list) > maxListLen {
		return nil, fmt.Errorf("tether.%s has more than %d entries", field, maxListLen)
	}
	ps := make([]Pattern, 0, len(list))
	for _, s := range list {
		p, err := ParsePattern(s)
		if err != nil {
			return nil, fmt.Errorf("tether.%s: %v", field, err)
		}
		ps = append(ps, p)
	}
	return ps, nil
}

func matchAny(ps []Pattern, channel string) bool {
	for _, p := range ps {
		if p.Match(channel) {
			return true
		}
	}
	return false
}

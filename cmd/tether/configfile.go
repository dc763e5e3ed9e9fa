package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/tether-run/tether"
)

// The config file of tether serve is TOML: a flat table whose keys are
// the names of serve's flags (max-lag = "30s"). Its settings are the
// flags', so each default stays the one constant the flag takes (no
// second list of settings to keep in step), and a later source (the
// environment, the command line) replaces a file's value by setting the
// same flag.

// maxConfigFile bounds the config file read.
const maxConfigFile = 1 << 20

// Kinds of settings, as a config file writes them.
const (
	kindString   = "string"
	kindDuration = "duration"
	kindInteger  = "integer"
	kindNumber   = "number"
	kindBool     = "bool"
	kindList     = "list"
)

// settingKind is how a flag's value is written in the config file, from
// the type its flag.Value holds (flag.Getter); a flag.Func takes a string.
func settingKind(f *flag.Flag) string {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return kindString
	}
	switch g.Get().(type) {
	case time.Duration:
		return kindDuration
	case int, int64, uint, uint64:
		return kindInteger
	case float64:
		return kindNumber
	case bool:
		return kindBool
	case []string:
		return kindList
	}
	return kindString
}

// oldNameOf is the current name of a flag kept under an old name (its
// usage says "old name of --X"), or "".
func oldNameOf(f *flag.Flag) string {
	rest, ok := strings.CutPrefix(f.Usage, "old name of --")
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(rest, " ")
	return strings.TrimRight(name, ",.;")
}

// notInFile are flags a config file cannot set.
var notInFile = map[string]string{
	"config": "a config file cannot name another",
}

// fileSetting is one key of a config file: the values to Set its flag to
// (a list has several).
type fileSetting struct {
	name   string
	values []string
	line   int // 0: not found
}

// readConfigFile reads and checks a config file against the flags of fs:
// every key must be a flag, with a value of its kind. It sets nothing.
func readConfigFile(path string, fs *flag.FlagSet) ([]fileSetting, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxConfigFile+1))
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	if len(b) > maxConfigFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxConfigFile)
	}
	return parseConfig(path, string(b), fs)
}

// parseConfig is readConfigFile of text, named path in errors.
func parseConfig(path, text string, fs *flag.FlagSet) ([]fileSetting, error) {
	var m map[string]any
	if _, err := toml.Decode(text, &m); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%s:%d: %s", path, pe.Position.Line, pe.Message)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	// In the file's order, so that errors read from the top.
	slices.SortFunc(keys, func(a, b string) int {
		if la, lb := keyLine(text, a), keyLine(text, b); la != lb {
			return la - lb
		}
		return strings.Compare(a, b)
	})
	var out []fileSetting
	var errs []error
	at := func(key string) string {
		if l := keyLine(text, key); l > 0 {
			return fmt.Sprintf("%s:%d", path, l)
		}
		return path
	}
	for _, k := range keys {
		f := fs.Lookup(k)
		if f == nil {
			msg := fmt.Sprintf("%s: unknown key %q", at(k), k)
			if s := closest(k, fs); s != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", s)
			}
			errs = append(errs, errors.New(msg))
			continue
		}
		if why := notInFile[k]; why != "" {
			errs = append(errs, fmt.Errorf("%s: key %q: %s", at(k), k, why))
			continue
		}
		if cur := oldNameOf(f); cur != "" {
			if _, both := m[cur]; both {
				errs = append(errs, fmt.Errorf("%s: %s is the old name of %s: give one of them", at(k), k, cur))
				continue
			}
		}
		values, err := settingValues(settingKind(f), m[k])
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %s: %w", at(k), k, err))
			continue
		}
		out = append(out, fileSetting{name: k, values: values, line: keyLine(text, k)})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// settingValues turns a TOML value into the strings its flag is Set to,
// refusing one of another kind than the setting's.
func settingValues(kind string, v any) ([]string, error) {
	bad := func(want string) error {
		return fmt.Errorf("want %s, got %s", want, tomlKind(v))
	}
	switch kind {
	case kindBool:
		if b, ok := v.(bool); ok {
			return []string{strconv.FormatBool(b)}, nil
		}
		return nil, bad("true or false")
	case kindInteger:
		if i, ok := v.(int64); ok {
			return []string{strconv.FormatInt(i, 10)}, nil
		}
		return nil, bad("an integer")
	case kindNumber:
		switch n := v.(type) {
		case int64:
			return []string{strconv.FormatInt(n, 10)}, nil
		case float64:
			return []string{strconv.FormatFloat(n, 'g', -1, 64)}, nil
		}
		return nil, bad("a number")
	case kindDuration:
		if s, ok := v.(string); ok {
			return []string{s}, nil
		}
		return nil, bad(`a duration string such as "30s"`)
	case kindList:
		switch l := v.(type) {
		case string:
			return []string{l}, nil
		case []any:
			out := make([]string, 0, len(l))
			for _, e := range l {
				s, ok := e.(string)
				if !ok {
					return nil, fmt.Errorf("want a list of strings, found %s in it", tomlKind(e))
				}
				out = append(out, s)
			}
			return out, nil
		}
		return nil, bad("a list of strings")
	}
	if s, ok := v.(string); ok {
		return []string{s}, nil
	}
	return nil, bad("a string")
}

func tomlKind(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("string %q", v)
	case int64:
		return fmt.Sprintf("integer %d", v)
	case float64:
		return fmt.Sprintf("number %v", v)
	case bool:
		return fmt.Sprintf("%v", v)
	case []any:
		return "a list"
	case map[string]any:
		return "a table"
	case time.Time:
		return "a date"
	}
	return fmt.Sprintf("%T", v)
}

// applyFile sets each flag of settings, read from path, but those skip
// says a later source sets.
func applyFile(fs *flag.FlagSet, path string, settings []fileSetting, skip func(name string) bool) error {
	for _, s := range settings {
		if skip(s.name) {
			continue
		}
		f := fs.Lookup(s.name)
		for _, v := range s.values {
			if err := f.Value.Set(v); err != nil {
				return fmt.Errorf("%s:%d: %s = %q: %w", path, s.line, s.name, v, err)
			}
		}
	}
	return nil
}

// keyLine finds the line of a top-level key (bare or quoted, a table
// header, or the first part of a dotted key): 0 when not found.
func keyLine(text, key string) int {
	q := regexp.QuoteMeta(key)
	re := regexp.MustCompile(`^\s*(\[+\s*)?("` + q + `"|'` + q + `'|` + q + `)\s*[=.\]]`)
	for i, line := range strings.Split(text, "\n") {
		if re.MatchString(line) {
			return i + 1
		}
	}
	return 0
}

// closest is the flag name nearest to key (at most 2 edits), or "".
func closest(key string, fs *flag.FlagSet) string {
	best, bestD := "", 3
	fs.VisitAll(func(f *flag.Flag) {
		if d := editDistance(key, f.Name); d < bestD {
			best, bestD = f.Name, d
		}
	})
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// fileFlags are the flags a config file sets, in the order
// tether config defaults writes them: every flag but the old names and
// those notInFile.
func fileFlags(fs *flag.FlagSet) []*flag.Flag {
	var out []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) {
		if oldNameOf(f) == "" && notInFile[f.Name] == "" {
			out = append(out, f)
		}
	})
	return out
}

// tomlValue writes a flag's default as a TOML value of its kind.
func tomlValue(f *flag.Flag) string {
	switch settingKind(f) {
	case kindBool, kindInteger, kindNumber:
		return f.DefValue
	case kindList:
		var items []string
		for s := range strings.SplitSeq(f.DefValue, ",") {
			if s != "" {
				items = append(items, tomlString(s))
			}
		}
		return "[" + strings.Join(items, ", ") + "]"
	}
	return tomlString(f.DefValue)
}

// tomlString quotes s as a TOML basic string (JSON's escapes are TOML's).
func tomlString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// writeDefaults writes a config file holding every setting at its
// default, each under its meaning.
func writeDefaults(w io.Writer) error {
	fs := serveFlags(new(tether.Config), new(serveOptions))
	var b strings.Builder
	b.WriteString(`# tether serve configuration: tether serve --config FILE (or TETHER_CONFIG=FILE).
# Written by tether config defaults: every setting at its default.
# Keys are the flags of tether serve. Precedence, per setting:
# command-line flags > environment (TETHER_*) > this file > defaults.
# Durations are strings ("30s", "10m"); lists are arrays of strings; paths
# are relative to the directory tether runs in.
`)
	for _, f := range fileFlags(fs) {
		_, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(&b, "\n# %s (%s)\n%s = %s\n", usage, settingKind(f), f.Name, tomlValue(f))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

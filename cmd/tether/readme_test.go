package main

import (
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/tether-run/tether"
)

var update = flag.Bool("update", false, "rewrite README.md's flag table from the flags")

const (
	tableBegin = "<!-- flags:begin: generated from cmd/tether's flags by `go test ./cmd/tether -run TestREADMEFlags -update` -->"
	tableEnd   = "<!-- flags:end -->"
)

// TestREADMEFlags fails when README's configuration table and tether
// serve's flags drift apart: every flag, its environment variable, its
// default (the constant its package exports) and its meaning.
func TestREADMEFlags(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(readme)
	i, j := strings.Index(s, tableBegin), strings.Index(s, tableEnd)
	if i < 0 || j < i {
		t.Fatalf("README.md has no %q ... %q section", tableBegin, tableEnd)
	}
	want := flagTable()
	got := s[i+len(tableBegin)+1 : j]
	if got == want {
		return
	}
	if *update {
		if err := os.WriteFile("../../README.md", []byte(s[:i+len(tableBegin)+1]+want+s[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("README.md's flag table is out of date; run go test ./cmd/tether -run TestREADMEFlags -update\ngot:\n%s\nwant:\n%s", got, want)
}

// flagTable renders every flag of tether serve as a Markdown table: its
// environment variable, its default, and how the config file writes it
// (the key is the flag's name).
func flagTable() string {
	var b strings.Builder
	b.WriteString("| flag | environment | default | in the file | meaning |\n|---|---|---|---|---|\n")
	serveFlags(new(tether.Config), new(serveOptions)).VisitAll(func(f *flag.Flag) {
		_, usage := flag.UnquoteUsage(f)
		def := f.DefValue
		if def == "" {
			def = "-"
		} else {
			def = "`" + def + "`"
		}
		file := settingKind(f)
		switch {
		case notInFile[f.Name] != "":
			file = "-"
		case oldNameOf(f) != "":
			file += " (old name)"
		}
		b.WriteString("| `--" + f.Name + "` | `" + envName(f.Name) + "` | " + def + " | " + file + " | " +
			strings.ReplaceAll(usage, "|", `\|`) + " |\n")
	})
	return b.String()
}

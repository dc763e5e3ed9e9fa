package main

import (
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tether-run/tether"
	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/limits"
	"github.com/tether-run/tether/session"
	"github.com/tether-run/tether/store/pebblestore"
)

// writeConfig writes a config file in a temporary directory.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tether.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Each setting takes its value from the first source that has it: the
// command line, the environment, the config file, the default; per kind
// of setting.
func TestConfigPrecedence(t *testing.T) {
	type setting struct {
		key                        string
		file, env                  string   // the value in the file (TOML) and the environment
		flags                      []string // the command line
		get                        func(tether.Config, serveOptions) any
		def, inFile, inEnv, inFlag any
	}
	d := func(s string) time.Duration {
		v, err := time.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, s := range []setting{
		{"max-lag", `"1m"`, "2m", []string{"--max-lag", "3m"},
			func(c tether.Config, _ serveOptions) any { return c.Session.MaxLag },
			session.DefaultMaxLag, d("1m"), d("2m"), d("3m")},
		{"shutdown-grace", `"1s"`, "2s", []string{"--shutdown-grace=3s"},
			func(_ tether.Config, o serveOptions) any { return o.grace },
			tether.DefaultShutdownGrace, d("1s"), d("2s"), d("3s")},
		{"max-in-flight", `11`, "12", []string{"--max-in-flight", "13"},
			func(c tether.Config, _ serveOptions) any { return c.Session.MaxInFlight },
			session.DefaultMaxInFlight, 11, 12, 13},
		{"data-reserve", `100`, "200", []string{"--data-reserve=300"},
			func(c tether.Config, _ serveOptions) any { return c.DataReserve },
			int64(pebblestore.DefaultReserve), int64(100), int64(200), int64(300)},
		{"publish-rate", `1.5`, "2.5", []string{"--publish-rate", "3.5"},
			func(c tether.Config, _ serveOptions) any { return c.Limits.PublishRate },
			float64(limits.DefaultPublishRate), 1.5, 2.5, 3.5},
		// true, then false, then true: each source overrides the one below.
		{"jobs-require-worker", `true`, "false", []string{"--jobs-require-worker"},
			func(c tether.Config, _ serveOptions) any { return c.Jobs.RequireWorker },
			false, true, false, true},
		{"allowed-origins", `["https://f1.example", "https://f2.example"]`, "https://e.example",
			[]string{"--allowed-origins", "https://a.example", "--allowed-origins", "https://b.example"},
			func(c tether.Config, _ serveOptions) any { return c.AllowedOrigins },
			[]string(nil), []string{"https://f1.example", "https://f2.example"}, []string{"https://e.example"},
			[]string{"https://a.example", "https://b.example"}},
		{"nats-stream", `"FILE"`, "ENV", []string{"--nats-stream", "FLAG"},
			func(c tether.Config, _ serveOptions) any { return c.NATS.Stream },
			tether.DefaultNATSStream, "FILE", "ENV", "FLAG"},
		{"idle-close-mode", `"close"`, "discard", []string{"--idle-close-mode", "reset"},
			func(c tether.Config, _ serveOptions) any { return c.Session.IdleCloseMode },
			conn.CloseMode(""), conn.CloseGraceful, conn.CloseDiscard, conn.CloseReset},
	} {
		t.Run(s.key, func(t *testing.T) {
			path := writeConfig(t, "# "+s.key+"\n"+s.key+" = "+s.file+"\n")
			stage := func(name string, args []string, want any) {
				t.Helper()
				cfg, opts, err := parseServeFlags(args, io.Discard)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if got := s.get(cfg, opts); !reflect.DeepEqual(got, want) {
					t.Fatalf("%s: %s is %#v, want %#v", name, s.key, got, want)
				}
			}
			stage("default", nil, s.def)
			stage("file", []string{"--config", path}, s.inFile)
			t.Setenv(envName("config"), path)
			stage("file from TETHER_CONFIG", nil, s.inFile)
			t.Setenv(envName(s.key), s.env)
			stage("environment over file", nil, s.inEnv)
			stage("flag over environment and file", s.flags, s.inFlag)
		})
	}
}

// An old name in the file sets the same setting; a command-line flag by
// the current name still wins over the environment's old name.
func TestConfigOldNames(t *testing.T) {
	path := writeConfig(t, `sse-max-lag = "45s"`+"\n")
	cfg, _, err := parseServeFlags([]string{"--config", path}, io.Discard)
	if err != nil || cfg.Session.MaxLag != 45*time.Second {
		t.Fatalf("sse-max-lag in the file: %v, max lag %v", err, cfg.Session.MaxLag)
	}
	t.Setenv("TETHER_SSE_MAX_LAG", "50s")
	cfg, _, err = parseServeFlags([]string{"--config", path, "--max-lag", "55s"}, io.Discard)
	if err != nil || cfg.Session.MaxLag != 55*time.Second {
		t.Fatalf("--max-lag over TETHER_SSE_MAX_LAG: %v, max lag %v", err, cfg.Session.MaxLag)
	}
}

// An unknown key is an error naming the file, the line and the key,
// from serve and from config check alike.
func TestConfigUnknownKey(t *testing.T) {
	path := writeConfig(t, "# settings\naddr = \"127.0.0.1:0\"\nmax-lagg = \"1m\"\n\n[server]\nport = 1\n")
	want := []string{path + `:3: unknown key "max-lagg" (did you mean max-lag?)`, path + `:5: unknown key "server"`}
	_, _, err := parseServeFlags([]string{"--config", path}, io.Discard)
	for _, w := range want {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Fatalf("parse: error %v, want it to contain %q", err, w)
		}
	}
	var stderr bytes.Buffer
	if err := run([]string{"serve", "--config", path, "--data", t.TempDir()}, &stderr); err == nil || !strings.Contains(err.Error(), want[0]) {
		t.Fatalf("tether serve: %v", err)
	}
	cliFails(t, want, "config", "check", path)
}

// A value of the wrong kind, or one its flag refuses, is an error naming
// the line and the key.
func TestConfigBadValues(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{`max-lag = 30`, `:1: max-lag: want a duration string such as "30s", got integer 30`},
		{`max-lag = "soon"`, `:1: max-lag = "soon": `},
		{`insecure = "yes"`, `:1: insecure: want true or false, got string "yes"`},
		{`max-in-flight = 1.5`, `:1: max-in-flight: want an integer, got number 1.5`},
		{`allowed-origins = [1]`, `:1: allowed-origins: want a list of strings, found integer 1 in it`},
		{`addr = ["a"]`, `:1: addr: want a string, got a list`},
		{`idle-close-mode = "gentle"`, `want close, reset or discard`},
		{"\n" + `config = "other.toml"`, `:2: key "config": a config file cannot name another`},
		{"max-lag = \"1m\"\nsse-max-lag = \"2m\"", `:2: sse-max-lag is the old name of max-lag: give one of them`},
		{"addr = ", `:1: `},
		{"addr = \"a\"\naddr = \"b\"", `:2: `},
	} {
		path := writeConfig(t, c.text)
		_, _, err := parseServeFlags([]string{"--config", path}, io.Discard)
		if err == nil || !strings.Contains(err.Error(), path+c.want) && !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want one with %q", c.text, err, c.want)
		}
		if _, _, err := cliRun(t, "config", "check", path); err == nil {
			t.Errorf("config check %q succeeded", c.text)
		}
	}
	_, _, err := parseServeFlags([]string{"--config", filepath.Join(t.TempDir(), "missing.toml")}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "missing.toml") {
		t.Fatalf("a missing config file: %v", err)
	}
}

// tether config defaults writes every setting at its default: read back,
// it gives exactly the configuration of no file at all, and config check
// finds nothing changed.
func TestConfigDefaults(t *testing.T) {
	out := cliOK(t, "config", "defaults")
	path := writeConfig(t, out)
	fromFile, optsFile, err := parseServeFlags([]string{"--config", path}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	plain, optsPlain, err := parseServeFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	optsFile.configFile = ""
	if !reflect.DeepEqual(fromFile, plain) || optsFile != optsPlain {
		t.Fatalf("the defaults file reads as\n%+v %+v\nwant\n%+v %+v", fromFile, optsFile, plain, optsPlain)
	}
	// Every setting is in it, under its meaning.
	fs := serveFlags(new(tether.Config), new(serveOptions))
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		line := "\n" + f.Name + " = "
		switch {
		case f.Name == "config" || oldNameOf(f) != "":
			if strings.Contains(out, line) {
				t.Errorf("defaults set %s", f.Name)
			}
		case !strings.Contains(out, line):
			t.Errorf("defaults lack %s", f.Name)
		default:
			n++
		}
	})
	if !strings.Contains(out, "\n# largest published message, in bytes (integer)\nmax-body = 1048576\n") {
		t.Errorf("defaults do not write max-body under its meaning:\n%s", out)
	}
	check := cliOK(t, "config", "check", path)
	if want := path + ": ok: " + strconv.Itoa(n) + " settings, 0 of them not the default\n"; check != want {
		t.Fatalf("config check of the defaults: %q, want %q", check, want)
	}
	changed := writeConfig(t, "max-lag = \"1m\"\nallowed-hosts = [\"a.example\", \"b.example\"]\n")
	check = cliOK(t, "config", "check", changed)
	if !strings.Contains(check, "max-lag") || !strings.Contains(check, "1m0s") || !strings.Contains(check, "a.example,b.example") {
		t.Fatalf("config check of two settings:\n%s", check)
	}
	rows := jsonLines(t, cliOK(t, "config", "check", "--json", changed))
	if len(rows) != 1 || rows[0]["ok"] != true || rows[0]["settings"].(map[string]any)["max-lag"] != "1m0s" {
		t.Fatalf("config check --json: %v", rows)
	}
}

// The file reaches a real server: one that sets --tcp-addr makes the
// binary listen for TCP.
func TestConfigFileServes(t *testing.T) {
	path := writeConfig(t, "tcp-addr = \"127.0.0.1:0\"\nmax-lag = \"1m\"\n")
	p := startBinary(t, t.TempDir(), "--config", path)
	if p.tcpAddr == "" {
		t.Fatal("the binary did not listen for TCP as its config file says")
	}
}

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/tether-run/tether"
	"github.com/tether-run/tether/internal/cli"
)

const configUsage = `usage: tether config defaults
       tether config check [--json] FILE

defaults  print a config file (TOML) with every setting of tether serve at its default
check     validate FILE: every key a setting, every value of its kind and valid, the
          files it names readable; prints the settings it changes
`

// configCmd is tether config: defaults and check.
func configCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stderr, configUsage)
		if len(args) == 0 {
			return errors.New("missing defaults or check")
		}
		return nil
	}
	switch args[0] {
	case "defaults":
		if len(args) > 1 {
			if args[1] == "-h" || args[1] == "--help" {
				fmt.Fprint(stderr, configUsage)
				return nil
			}
			return fmt.Errorf("defaults: unexpected arguments: %q", args[1:])
		}
		return writeDefaults(stdout)
	case "check":
		return configCheck(args[1:], stdout, stderr)
	}
	fmt.Fprint(stderr, configUsage)
	return fmt.Errorf("unknown subcommand %q", args[0])
}

// configCheck reads a file as tether serve --config would, alone (no
// environment, no flags), and lists what it sets.
func configCheck(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tether config check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the result as one JSON object")
	fs.Usage = func() { fmt.Fprint(stderr, configUsage, "\n"); fs.PrintDefaults() }
	pos, err := cli.Parse(fs, args)
	if err != nil {
		if cli.IsHelp(err) {
			return nil
		}
		return err
	}
	if err := cli.Args(pos, "FILE"); err != nil {
		return fmt.Errorf("check: %w", err)
	}
	path := pos[0]
	var cfg tether.Config
	var opts serveOptions
	sfs := serveFlags(&cfg, &opts)
	settings, err := readConfigFile(path, sfs)
	if err != nil {
		return err
	}
	if err := applyFile(sfs, path, settings, func(string) bool { return false }); err != nil {
		return err
	}
	cfg.TLSCertFile = opts.tlsCert
	if err := loadTokenFiles(&cfg, opts); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if *asJSON {
		set := map[string]string{}
		for _, s := range settings {
			set[s.name] = sfs.Lookup(s.name).Value.String()
		}
		return cli.JSONLine(stdout, map[string]any{"file": path, "ok": true, "settings": set})
	}
	var rows [][]string
	for _, s := range settings {
		f := sfs.Lookup(s.name)
		if v := f.Value.String(); v != f.DefValue {
			rows = append(rows, []string{s.name, v, orDash(f.DefValue)})
		}
	}
	fmt.Fprintf(stdout, "%s: ok: %d settings, %d of them not the default\n", path, len(settings), len(rows))
	if len(rows) == 0 {
		return nil
	}
	return cli.Table(stdout, []string{"SETTING", "VALUE", "DEFAULT"}, rows)
}

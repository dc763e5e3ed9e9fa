package main

import (
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/tether-run/tether/internal/cli"
)

// version is the release of this binary, set at link time:
//
//	go build -ldflags "-X main.version=v1.2.0" ./cmd/tether
//
// Empty: the module version Go recorded (a tag with go install, else
// "(devel)").
var version string

// buildInfo is what tether version prints.
type buildInfo struct {
	Version    string `json:"version"`
	Commit     string `json:"commit,omitempty"`
	CommitTime string `json:"commit_time,omitempty"`
	Modified   bool   `json:"modified"`
	Go         string `json:"go"`
	Platform   string `json:"platform"`
}

// readBuildInfo gathers the version, the VCS commit Go stamped into the
// binary (go build in a git checkout; not go run or a test binary) and the
// Go version.
func readBuildInfo() buildInfo {
	return fromBuildInfo(debug.ReadBuildInfo())
}

// fromBuildInfo is readBuildInfo of what debug.ReadBuildInfo answered.
func fromBuildInfo(info *debug.BuildInfo, ok bool) buildInfo {
	bi := buildInfo{Version: version, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if !ok {
		if bi.Version == "" {
			bi.Version = "unknown"
		}
		return bi
	}
	if bi.Version == "" {
		bi.Version = info.Main.Version
	}
	if info.GoVersion != "" {
		bi.Go = info.GoVersion
	}
	if bi.Version == "" {
		bi.Version = "(devel)"
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			bi.Commit = s.Value
		case "vcs.time":
			bi.CommitTime = s.Value
		case "vcs.modified":
			bi.Modified = s.Value == "true"
		}
	}
	return bi
}

// versionCmd is tether version.
func versionCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tether version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print one JSON object")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: tether version [--json]\n\nPrints the version, the VCS commit it was built from and the Go version.\n\n")
		fs.PrintDefaults()
	}
	pos, err := cli.Parse(fs, args)
	if err != nil {
		if cli.IsHelp(err) {
			return nil
		}
		return err
	}
	if err := cli.Args(pos); err != nil {
		return err
	}
	bi := readBuildInfo()
	if *asJSON {
		return cli.JSONLine(stdout, bi)
	}
	commit := bi.Commit
	switch {
	case commit == "":
		commit = "unknown (not built from a VCS checkout)"
	case bi.Modified:
		commit += " (modified)"
	}
	pairs := [][2]string{{"tether", bi.Version}, {"commit", commit}}
	if bi.CommitTime != "" {
		pairs = append(pairs, [2]string{"committed", bi.CommitTime})
	}
	pairs = append(pairs, [2]string{"go", bi.Go}, [2]string{"platform", bi.Platform})
	return cli.Fields(stdout, pairs)
}

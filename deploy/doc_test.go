package deploy

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// quote is a verbatim quote of a deploy file in docs/deploy.md: a marker
// line naming the file, then a fenced block holding the whole file.
var quote = regexp.MustCompile("(?s)<!-- quote: (\\S+) -->\n```[a-z]*\n(.*?)```\n")

// TestDocQuotesFiles checks that every quote in docs/deploy.md is exactly
// the file it names, and that every configuration file under deploy/ is
// quoted, so the guide and the tested files cannot drift apart.
func TestDocQuotesFiles(t *testing.T) {
	doc, err := os.ReadFile("../docs/deploy.md")
	if err != nil {
		t.Fatal(err)
	}
	quoted := map[string]bool{}
	for _, m := range quote.FindAllStringSubmatch(string(doc), -1) {
		path, body := m[1], m[2]
		quoted[path] = true
		file, err := os.ReadFile(filepath.Join("..", path))
		if err != nil {
			t.Errorf("docs/deploy.md quotes %s: %v", path, err)
			continue
		}
		if string(file) != body {
			t.Errorf("docs/deploy.md's quote of %s differs from the file; quote it again:\n%s", path, firstDiff(string(file), body))
		}
	}
	if strings.Count(string(doc), "<!-- quote:") != len(quote.FindAllString(string(doc), -1)) {
		t.Error("docs/deploy.md has a quote marker not followed by a fenced block")
	}
	err = filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(path, ".go") {
			return err
		}
		if name := "deploy/" + filepath.ToSlash(path); !quoted[name] {
			t.Errorf("%s is not quoted in docs/deploy.md", name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// firstDiff describes the first line where a and b differ.
func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range max(len(al), len(bl)) {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return fmt.Sprintf("line %d:\n  file:  %s\n  quote: %s", i+1, x, y)
		}
	}
	return "(a trailing newline)"
}

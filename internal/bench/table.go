package bench

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
)

// metricDef describes a metric for the tables and plots.
type metricDef struct {
	key, label string
	better     string // "higher", "lower" or "" (a count that must be 0, or a fact)
}

// scenarioMetrics are the metrics each scenario's table shows, in order.
var scenarioMetrics = map[string][]metricDef{
	"idle": {
		{"rss_per_conn_bytes", "server RSS per connection (B)", "lower"},
		{"goroutines_per_conn", "goroutines per connection", "lower"},
		{"open_per_s", "connections opened/s", "higher"},
		{"dropped", "ended by the server while idle (must be 0)", ""},
	},
	"fanout": {
		{"delivered_per_s", "delivered msgs/s", "higher"},
		{"published_per_s", "published msgs/s (acknowledged)", ""},
		{"p50_ms", "latency p50 (ms)", "lower"},
		{"p99_ms", "latency p99 (ms)", "lower"},
		{"server_cpu_s_per_m", "server CPU s per million deliveries", "lower"},
		{"server_cpu_cores", "server CPU (cores busy)", ""},
		{"client_cpu_cores", "harness clients' CPU (cores busy)", ""},
		{"other_cpu_cores", "rest of the machine's CPU (cores busy)", ""},
		{"max_ms", "latency max (ms)", "lower"},
		{"missed", "missed (must be 0)", ""},
		{"repeated", "repeated (must be 0)", ""},
		{"ended_by_server", "ended by the server while read (clients' count)", ""},
		{"ended_by_server_says", "ended, by the server's reasons", ""},
		{"ended_heartbeat", "ended by heartbeat (target 0)", ""},
	},
	"publish": {
		{"appends_per_s", "acked publishes/s", "higher"},
		{"p50_ms", "ack latency p50 (ms)", "lower"},
		{"p99_ms", "ack latency p99 (ms)", "lower"},
		{"errors", "errors", ""},
	},
	"churn": {
		{"connects_per_s", "connects/s (with resume)", "higher"},
		{"missed", "missed (must be 0)", ""},
		{"repeated", "repeated (must be 0)", ""},
	},
	"detection": {
		{"seconds", "time to notice (s)", "lower"},
	},
}

// printTable writes one scenario's results: a row per case and metric, a
// column per system, and the first system's ratio (tether's, when it is
// listed first) to each other.
func printTable(w io.Writer, scenario string, results []Result) {
	fmt.Fprintf(w, "\n== %s ==\n", scenario)
	for _, row := range tableRows(scenario, results) {
		fmt.Fprintln(w, row)
	}
}

// tableRows renders the table as tab-aligned text lines, also used for
// the Markdown of docs/benchmarks.md (see MarkdownTable).
func tableRows(scenario string, results []Result) []string {
	systems, cases, by := index(results)
	var sb strings.Builder
	tw := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', 0)
	head := []string{"case", "metric"}
	for i, s := range systems {
		head = append(head, string(s))
		if i > 0 {
			head = append(head, string(systems[0])+"/"+string(s))
		}
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, c := range cases {
		for _, md := range scenarioMetrics[scenario] {
			cells := []string{c, md.label}
			any := false
			for i, s := range systems {
				re := by[c][s]
				cells = append(cells, cell(re, md.key))
				if re != nil && re.Metrics != nil {
					if _, ok := re.Metrics[md.key]; ok {
						any = true
					}
				}
				if i > 0 {
					cells = append(cells, ratio(by[c][systems[0]], re, md))
				}
			}
			if any || md == scenarioMetrics[scenario][0] {
				fmt.Fprintln(tw, strings.Join(cells, "\t"))
			}
		}
	}
	tw.Flush()
	return strings.Split(strings.TrimRight(sb.String(), "\n"), "\n")
}

// MarkdownTable renders a scenario's results as a Markdown table.
func MarkdownTable(scenario string, results []Result) string {
	var out strings.Builder
	for i, row := range tableRows(scenario, results) {
		parts := splitCols(row)
		out.WriteString("| " + strings.Join(parts, " | ") + " |\n")
		if i == 0 {
			out.WriteString("|" + strings.Repeat("---|", len(parts)) + "\n")
		}
	}
	return out.String()
}

// splitCols splits a tabwriter row on runs of two or more spaces.
func splitCols(row string) []string {
	var parts []string
	for _, p := range strings.Split(row, "  ") {
		if p = strings.TrimSpace(p); p != "" {
			parts = append(parts, p)
		}
	}
	return parts
}

func index(results []Result) (systems []System, cases []string, by map[string]map[System]*Result) {
	by = map[string]map[System]*Result{}
	for i := range results {
		re := &results[i]
		if by[re.Case] == nil {
			by[re.Case] = map[System]*Result{}
			cases = append(cases, re.Case)
		}
		by[re.Case][re.System] = re
		found := false
		for _, s := range systems {
			found = found || s == re.System
		}
		if !found {
			systems = append(systems, re.System)
		}
	}
	return systems, cases, by
}

func cell(re *Result, key string) string {
	switch {
	case re == nil:
		return "n/a"
	case re.Skipped != "":
		return "skipped"
	case re.Err != "":
		return "error"
	}
	v, ok := re.Metrics[key]
	if !ok {
		return "-"
	}
	t := re.Text[key]
	if v < 0 && t != "" {
		return t
	}
	s := num(v)
	if t != "" {
		s += " (" + t + ")"
	}
	return s
}

// ratio is tether's figure over the peer's, marked "better" or "worse" by
// the metric's direction.
func ratio(t, p *Result, md metricDef) string {
	// A system that failed a run shows "error": no ratio from its other
	// runs' figures either.
	if t == nil || p == nil || md.better == "" || t.Metrics == nil || p.Metrics == nil || t.Err != "" || p.Err != "" {
		return "-"
	}
	a, ok1 := t.Metrics[md.key]
	b, ok2 := p.Metrics[md.key]
	if !ok1 || !ok2 || a < 0 || b <= 0 {
		if ok1 && ok2 && a >= 0 && b < 0 && md.better == "lower" {
			return "better"
		}
		return "-"
	}
	x := a / b
	good := (md.better == "higher") == (x >= 1)
	word := "worse"
	if good {
		word = "better"
	}
	if num(x) == "1" {
		word = "same"
	}
	return fmt.Sprintf("%sx (%s)", num(x), word)
}

// num formats v with three significant digits, and thousands separators
// from 1,000 on.
func num(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "-"
	}
	a := math.Abs(v)
	switch {
	case a >= 1000:
		s := strconv.FormatInt(int64(math.Round(a)), 10)
		var b strings.Builder
		for i, c := range s {
			if i > 0 && (len(s)-i)%3 == 0 {
				b.WriteByte(',')
			}
			b.WriteRune(c)
		}
		if v < 0 {
			return "-" + b.String()
		}
		return b.String()
	case a == 0:
		return "0"
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}

// Markdown renders every scenario of rep as Markdown tables, with the
// machine and the load it ran under, for docs/benchmarks.md.
func Markdown(rep *Report) string {
	var b strings.Builder
	m := rep.Machine
	fmt.Fprintf(&b, "Machine: %d cores, %.1f GiB, Linux %s, %s, RLIMIT_NOFILE %d. Run %s to %s, load average %s before, %s after.\n",
		m.Cores, float64(m.MemoryBytes)/(1<<30), m.Kernel, m.Go, m.NoFile, rep.Started, rep.Finished, m.LoadBefore, m.LoadAfter)
	var order []string
	seen := map[string][]Result{}
	for _, re := range rep.Results {
		if _, ok := seen[re.Scenario]; !ok {
			order = append(order, re.Scenario)
		}
		seen[re.Scenario] = append(seen[re.Scenario], re)
	}
	for _, sc := range order {
		fmt.Fprintf(&b, "\n#### %s\n\n%s", sc, MarkdownTable(sc, seen[sc]))
		for _, re := range seen[sc] {
			switch {
			case re.Skipped != "":
				fmt.Fprintf(&b, "\n- %s, %s: skipped: %s", re.Case, re.System, re.Skipped)
			case re.Err != "":
				fmt.Fprintf(&b, "\n- %s, %s: error: %s", re.Case, re.System, re.Err)
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

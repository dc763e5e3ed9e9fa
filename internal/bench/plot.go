package bench

import (
	"fmt"
	"image/color"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// plotSpec is one PNG: a grouped bar chart of one metric, a group per
// case, a bar per system.
type plotSpec struct {
	file, scenario, metric, title, ylabel string
}

var plots = []plotSpec{
	{"idle-memory.png", "idle", "rss_per_conn_bytes", "Idle: server RSS per connection", "bytes per connection (lower is better)"},
	{"fanout-throughput.png", "fanout", "delivered_per_s", "Fan-out: delivered messages/s", "messages/s (higher is better)"},
	{"fanout-p99.png", "fanout", "p99_ms", "Fan-out: publish-to-receive latency p99", "ms (lower is better)"},
	{"publish-throughput.png", "publish", "appends_per_s", "Publish: acknowledged publishes/s (tether: fsynced)", "publishes/s (higher is better)"},
	{"churn.png", "churn", "connects_per_s", "Churn: connects/s with resume", "connects/s (higher is better)"},
	{"detection.png", "detection", "seconds", "Detection: time to notice a departure", "seconds (lower is better; missing: not noticed)"},
}

var systemColors = map[System]color.RGBA{
	Tether:   {R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	Nchan:    {R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	SocketIO: {R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
}

// WritePlots draws every plot of rep that has data into dir.
func WritePlots(dir string, rep *Report) error {
	for _, ps := range plots {
		var rs []Result
		for _, re := range rep.Results {
			if re.Scenario == ps.scenario {
				rs = append(rs, re)
			}
		}
		if len(rs) == 0 {
			continue
		}
		if err := barPlot(filepath.Join(dir, ps.file), ps, rs); err != nil {
			return fmt.Errorf("bench: plot %s: %w", ps.file, err)
		}
	}
	return nil
}

func barPlot(path string, ps plotSpec, rs []Result) error {
	systems, cases, by := index(rs)
	p := plot.New()
	p.Title.Text = ps.title
	p.Y.Label.Text = ps.ylabel
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.XOffs = vg.Points(8)
	w := vg.Points(18)
	top := 0.0
	for i, s := range systems {
		vals := make(plotter.Values, len(cases))
		for j, c := range cases {
			if re := by[c][s]; re != nil && re.Metrics != nil && re.Metrics[ps.metric] > 0 {
				vals[j] = re.Metrics[ps.metric]
				top = max(top, vals[j])
			}
		}
		bars, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return err
		}
		bars.LineStyle.Width = 0
		bars.Color = systemColors[s]
		bars.Offset = w * vg.Length(float64(i)-float64(len(systems)-1)/2)
		p.Add(bars)
		p.Legend.Add(string(s), bars)
	}
	p.NominalX(cases...)
	p.Y.Min, p.Y.Max = 0, top*1.3 // room for the legend
	width := vg.Length(max(6, 1.6*float64(len(cases)))) * vg.Inch
	return p.Save(width, 4*vg.Inch, path)
}

package bench

import (
	"fmt"
	"image/color"
	"math"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// plotSpec is one PNG: a grouped bar chart of one metric, a group per
// case, a bar per system.
type plotSpec struct {
	file, scenario, metric, title, ylabel string
	logSeconds                            bool // seconds on a log scale, 1 µs to 100 s
}

var plots = []plotSpec{
	{"idle-memory.png", "idle", "rss_per_conn_bytes", "Idle: server RSS per connection", "bytes per connection (lower is better)", false},
	{"fanout-throughput.png", "fanout", "delivered_per_s", "Fan-out: delivered messages/s", "messages/s (higher is better)", false},
	{"fanout-p99.png", "fanout", "p99_ms", "Fan-out: publish-to-receive latency p99", "ms (lower is better)", false},
	{"fanout-cpu.png", "fanout", "server_cpu_s_per_m", "Fan-out: server CPU (user + system) per million deliveries", "CPU s per million deliveries (lower is better)", false},
	{"publish-throughput.png", "publish", "appends_per_s", "Publish: acknowledged publishes/s (tether: fsynced)", "publishes/s (higher is better)", false},
	{"churn.png", "churn", "connects_per_s", "Churn: connects/s with resume", "connects/s (higher is better)", false},
	{"detection.png", "detection", "seconds", "Detection: time to notice a departure", "log scale (lower is better; no bar: not noticed)", true},
}

var systemColors = map[System]color.RGBA{
	Tether:       {R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	TetherBefore: {R: 0x9e, G: 0xc5, B: 0xe0, A: 0xff},
	Nchan:        {R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	SocketIO:     {R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	Centrifugo:   {R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
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
			if re := by[c][s]; re != nil && re.Err == "" && re.Metrics != nil && re.Metrics[ps.metric] > 0 {
				vals[j] = re.Metrics[ps.metric]
				if ps.logSeconds {
					// Bars grow from 1 µs: height is log10 of microseconds.
					vals[j] = max(0, math.Log10(vals[j]*1e6))
				}
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
	if top == 0 {
		top = 1 // no data above 0 (a CPU figure below its 10 ms grain): an empty axis
	}
	p.Y.Min, p.Y.Max = 0, top*1.3 // room for the legend
	p.Y.Tick.Marker = niceTicks{}
	if ps.logSeconds {
		p.Y.Max = 8.5
		p.Y.Tick.Marker = logSecondTicks{}
	}
	width := vg.Length(max(6, 2.2*float64(len(cases)))) * vg.Inch
	return p.Save(width, 4*vg.Inch, path)
}

// niceTicks puts about five ticks at round values, labelled like the
// tables (thousands separated).
type niceTicks struct{}

// Ticks implements plot.Ticker.
func (niceTicks) Ticks(lo, hi float64) []plot.Tick {
	if hi <= lo {
		return []plot.Tick{{Value: lo, Label: num(lo)}}
	}
	raw := (hi - lo) / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 5, 10} {
		if step = m * mag; step >= raw {
			break
		}
	}
	var ts []plot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi; v += step {
		ts = append(ts, plot.Tick{Value: v, Label: num(v)})
	}
	return ts
}

// logSecondTicks labels the log10-of-microseconds axis of a logSeconds
// plot in time units.
type logSecondTicks struct{}

// Ticks implements plot.Ticker.
func (logSecondTicks) Ticks(lo, hi float64) []plot.Tick {
	labels := []string{"1 µs", "10 µs", "100 µs", "1 ms", "10 ms", "100 ms", "1 s", "10 s", "100 s"}
	var ts []plot.Tick
	for i, l := range labels {
		if v := float64(i); v >= lo && v <= hi {
			ts = append(ts, plot.Tick{Value: v, Label: l})
		}
	}
	return ts
}

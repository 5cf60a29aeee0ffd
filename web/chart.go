package web

import (
	"fmt"
	"html/template"
	"strings"
)

// Charts are drawn on the server as inline SVG: no script, no library, and
// they print. Values are integers (counts or minor units); labels are
// already formatted by the caller.

// Bar is one bar of a chart.
type Bar struct {
	Label   string // under the bar (or beside it, horizontally)
	Value   int64  // its height; negative values are drawn as zero
	Display string // the value as people read it ("3.00 CNY")
}

// chart geometry, in SVG user units (the picture scales with its box).
const (
	chartWidth         = 720
	chartHeight        = 220
	chartPadLeft       = 8
	chartPadBottom     = 28
	chartPadTop        = 22
	chartBarGap        = 4
	chartRowHeight     = 34
	chartLabelWidth    = 170
	chartBarsMax       = 400
	chartLabelEveryMax = 8 // at most this many day labels under a column chart
)

// ColumnChart draws vertical bars (one per day, say) with a title for
// screen readers and a tooltip per bar.
func ColumnChart(title, color string, bars []Bar) template.HTML {
	if len(bars) > chartBarsMax {
		bars = bars[len(bars)-chartBarsMax:]
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg">`,
		chartWidth, chartHeight, template.HTMLEscapeString(title))
	fmt.Fprintf(&b, `<title>%s</title>`, template.HTMLEscapeString(title))
	peak := int64(0)
	peakDisplay := "0"
	for _, bar := range bars {
		if bar.Value > peak {
			peak, peakDisplay = bar.Value, bar.Display
		}
	}
	plotHeight := chartHeight - chartPadTop - chartPadBottom
	baseline := chartHeight - chartPadBottom
	fmt.Fprintf(&b, `<line x1="0" y1="%d" x2="%d" y2="%d" stroke="#8a939c" stroke-width="1"/>`, baseline, chartWidth, baseline)
	fmt.Fprintf(&b, `<text x="%d" y="14" font-size="12" fill="#4d5560">max %s</text>`, chartPadLeft, template.HTMLEscapeString(peakDisplay))
	if len(bars) == 0 {
		b.WriteString(`</svg>`)
		return template.HTML(b.String()) //nolint:gosec // every text above is escaped
	}
	slot := float64(chartWidth-chartPadLeft) / float64(len(bars))
	labelEvery := (len(bars) + chartLabelEveryMax - 1) / chartLabelEveryMax
	for i, bar := range bars {
		height := 0.0
		if peak > 0 && bar.Value > 0 {
			height = float64(plotHeight) * float64(bar.Value) / float64(peak)
		}
		x := float64(chartPadLeft) + float64(i)*slot
		width := max(1, slot-chartBarGap)
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %s</title></rect>`,
			x, float64(baseline)-height, width, height, color, template.HTMLEscapeString(bar.Label), template.HTMLEscapeString(bar.Display))
		// The last day is always labelled; the regular label before it is
		// dropped when it would stand too close and the two would overlap.
		last := i == len(bars)-1
		crowdsLast := !last && len(bars)-1-i < labelEvery/2+1
		if (i%labelEvery == 0 && !crowdsLast) || last {
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="12" fill="#4d5560" text-anchor="middle">%s</text>`,
				x+width/2, chartHeight-8, template.HTMLEscapeString(bar.Label))
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // every text above is escaped
}

// FunnelChart draws horizontal bars, one per stage, widest first, each with
// its value written at its end.
func FunnelChart(title string, colors []string, bars []Bar) template.HTML {
	if len(bars) > chartBarsMax {
		bars = bars[:chartBarsMax]
	}
	height := chartRowHeight*len(bars) + 8
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg">`,
		chartWidth, height, template.HTMLEscapeString(title))
	fmt.Fprintf(&b, `<title>%s</title>`, template.HTMLEscapeString(title))
	peak := int64(0)
	for _, bar := range bars {
		peak = max(peak, bar.Value)
	}
	plotWidth := chartWidth - chartLabelWidth - 90
	for i, bar := range bars {
		y := 4 + i*chartRowHeight
		width := 0.0
		if peak > 0 && bar.Value > 0 {
			width = max(2, float64(plotWidth)*float64(bar.Value)/float64(peak))
		}
		color := "#0b6e4f"
		if len(colors) > 0 {
			color = colors[i%len(colors)]
		}
		fmt.Fprintf(&b, `<text x="0" y="%d" font-size="14" fill="#1b1f24">%s</text>`, y+19, template.HTMLEscapeString(bar.Label))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" rx="3" fill="%s"><title>%s: %s</title></rect>`,
			chartLabelWidth, y+4, width, chartRowHeight-10, color, template.HTMLEscapeString(bar.Label), template.HTMLEscapeString(bar.Display))
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="14" font-weight="700" fill="#1b1f24">%s</text>`,
			float64(chartLabelWidth)+width+8, y+19, template.HTMLEscapeString(bar.Display))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // every text above is escaped
}

package web

import (
	"fmt"
	"html/template"
	"strings"
)

// Charts are drawn on the server: no script, no library, and they print.
// The bars are inline SVG stretched to the width of their box; every word
// and number is HTML beside them, so text keeps its CSS size (at least
// 12 px) on a 360 px phone instead of shrinking with the picture. Values are
// integers (counts or minor units); labels are already formatted by the
// caller.

// Bar is one bar of a chart.
type Bar struct {
	Label   string // under the bar (or beside it, horizontally)
	Value   int64  // its height; negative values are drawn as zero
	Display string // the value as people read it ("3.00 CNY")
}

// chart geometry, in SVG user units (the picture stretches to its box).
const (
	chartWidth         = 720
	chartHeight        = 160
	chartBarGap        = 4
	chartBarsMax       = 400
	chartLabelEveryMax = 8 // at most this many day labels under a column chart
)

// ColumnChart draws vertical bars (one per day, say) with a title for
// screen readers and a tooltip per bar. When every bar is zero there is
// nothing to draw, and it says empty instead, in plain words.
func ColumnChart(title, color, empty string, bars []Bar) template.HTML {
	if len(bars) > chartBarsMax {
		bars = bars[len(bars)-chartBarsMax:]
	}
	peak, peakBar := int64(0), Bar{}
	for _, bar := range bars {
		if bar.Value > peak {
			peak, peakBar = bar.Value, bar
		}
	}
	if peak == 0 {
		return emptyState(empty)
	}
	var b strings.Builder
	b.WriteString(`<figure class="colchart">`)
	fmt.Fprintf(&b, `<p class="chart-peak">Best day: %s, %s</p>`, esc(peakBar.Label), esc(peakBar.Display))
	fmt.Fprintf(&b, `<svg class="chart-bars" viewBox="0 0 %d %d" preserveAspectRatio="none" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg">`,
		chartWidth, chartHeight, esc(title))
	fmt.Fprintf(&b, `<title>%s</title>`, esc(title))
	slot := float64(chartWidth) / float64(len(bars))
	for i, bar := range bars {
		height := 0.0
		if bar.Value > 0 {
			height = float64(chartHeight-2) * float64(bar.Value) / float64(peak)
		}
		x := float64(i) * slot
		width := max(1, slot-chartBarGap)
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %s</title></rect>`,
			x, float64(chartHeight)-height, width, height, color, esc(bar.Label), esc(bar.Display))
	}
	b.WriteString(`</svg><div class="chart-axis" aria-hidden="true">`)
	// The first and last days are always labelled; regular labels between
	// them are dropped when they would stand too close to the last one. On
	// a phone only the regular label nearest the middle stays (the others
	// are class minor): three labels fit 300 px.
	labelEvery := (len(bars) + chartLabelEveryMax - 1) / chartLabelEveryMax
	var ticks []int
	for i := range bars {
		last := i == len(bars)-1
		crowdsLast := !last && len(bars)-1-i < labelEvery/2+1
		if (i%labelEvery == 0 && !crowdsLast) || last {
			ticks = append(ticks, i)
		}
	}
	middle := -1
	for _, i := range ticks {
		if i != 0 && i != len(bars)-1 && (middle < 0 || abs(i-len(bars)/2) < abs(middle-len(bars)/2)) {
			middle = i
		}
	}
	for _, i := range ticks {
		center := (float64(i) + 0.5) * 100 / float64(len(bars))
		class := "tick"
		switch {
		case i == 0:
			class += " first"
		case i == len(bars)-1:
			class += " last"
		case i != middle:
			class += " minor"
		}
		fmt.Fprintf(&b, `<span class="%s" style="left:%.2f%%">%s</span>`, class, center, esc(bars[i].Label))
	}
	b.WriteString(`</div></figure>`)
	return template.HTML(b.String()) //nolint:gosec // every text above is escaped
}

// FunnelChart draws horizontal bars, one per stage, widest first, each with
// its label before it and its value after it. When every stage is zero it
// says empty instead.
func FunnelChart(title, empty string, colors []string, bars []Bar) template.HTML {
	if len(bars) > chartBarsMax {
		bars = bars[:chartBarsMax]
	}
	peak := int64(0)
	for _, bar := range bars {
		peak = max(peak, bar.Value)
	}
	if peak == 0 {
		return emptyState(empty)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<figure class="funnel"><figcaption class="visually-hidden">%s</figcaption><dl>`, esc(title))
	for i, bar := range bars {
		percent := 0.0
		if bar.Value > 0 {
			percent = max(1, 100*float64(bar.Value)/float64(peak))
		}
		color := "#0b6e4f"
		if len(colors) > 0 {
			color = colors[i%len(colors)]
		}
		fmt.Fprintf(&b, `<div class="funnel-row"><dt>%s</dt><dd><span class="funnel-track"><span class="funnel-bar" style="width:%.1f%%;background:%s"></span></span><span class="funnel-value">%s</span></dd></div>`,
			esc(bar.Label), percent, color, esc(bar.Display))
	}
	b.WriteString(`</dl></figure>`)
	return template.HTML(b.String()) //nolint:gosec // every text above is escaped
}

// emptyState is what a chart with nothing to show says instead.
func emptyState(text string) template.HTML {
	headline, rest, _ := strings.Cut(text, "\n")
	return template.HTML(`<p class="empty-state" data-testid="empty-chart"><strong>` + esc(headline) + `</strong>` + esc(rest) + `</p>`) //nolint:gosec // escaped
}

func esc(s string) string { return template.HTMLEscapeString(s) }

func abs(n int) int { return max(n, -n) }

package proxybench

import (
	"fmt"
	"strings"
	"testing"
	"text/tabwriter"
	"time"
)

// flipLatencies returns each flip's latency and berth's sync duration.
func (r *sizeResult) flipLatencies() (latency, sync []time.Duration) {
	for _, f := range r.flips {
		latency = append(latency, f.latency)
		sync = append(sync, f.sync)
	}
	return latency, sync
}

// ratio is a/b, 0 when b is 0.
func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// verdict says whether a goal is met.
func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// report reports r's numbers as benchmark metrics and logs them with the
// goals.
func (r *sizeResult) report(b *testing.B) {
	nft, legacy, own := r.floors["nft"], r.floors["legacy"], r.floors[r.mode]
	latency, sync := r.flipLatencies()
	flip, flipSync := median(latency), median(sync)
	peak := max(r.cold.peakRSS, r.incr.peakRSS)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(r.cold.wall.Seconds(), "cold-s")
	b.ReportMetric(r.cold.sync.Seconds(), "cold-sync-s")
	b.ReportMetric(nft.full.wall.Seconds(), "nft-floor-full-s")
	b.ReportMetric(legacy.full.wall.Seconds(), "legacy-floor-full-s")
	b.ReportMetric(ratio(r.cold.sync, own.full.wall), "x-floor-full")
	b.ReportMetric(ms(flip), "flip-ms")
	b.ReportMetric(ms(nft.partial.wall), "nft-floor-flip-ms")
	b.ReportMetric(ms(legacy.partial.wall), "legacy-floor-flip-ms")
	b.ReportMetric(ratio(flip, own.partial.wall), "x-floor-flip")
	b.ReportMetric(r.incr.latency.Seconds(), "incr-s")
	b.ReportMetric(float64(r.payload.rules), "rules")
	b.ReportMetric(r.cold.bytes, "payload-B")
	b.ReportMetric(mib(peak), "rss-peak-MiB")
	b.ReportMetric(r.cold.cpu.total().Seconds(), "cold-cpu-s")

	// testing keeps only the first 10 lines a benchmark logs.
	n := r.services
	b.Logf("%d services × %d endpoints: %d rules, %d endpoint chains, full payload %d bytes rendered, %.0f sent by berth in %d sync(s); objects created in %s",
		n, endpointsPerService, r.payload.rules, r.payload.endpointChains, r.payload.full.Bytes(), r.cold.bytes, r.cold.syncs, round(r.create))
	b.Logf("cold start: rules in the kernel %s after berth's start; berth's own sync %s; floor %s nft (%s CPU), %s legacy → %.2f× the %s floor (goal ≤ %.1f×: %s)",
		round(r.cold.wall), round(r.cold.sync), round(nft.full.wall), round(nft.full.cpu), round(legacy.full.wall),
		ratio(r.cold.sync, own.full.wall), r.mode, goalRatio, verdict(ratio(r.cold.sync, own.full.wall) <= goalRatio))
	b.Logf("cold start: berth CPU %.2f s (own) + %.2f s (iptables children), RSS peak %.1f MiB, %.1f MiB after (Go heap in use %.1f MiB); iptables-save -t nat of the rules takes %s nft, %s legacy",
		r.cold.cpu.own.Seconds(), r.cold.cpu.children.Seconds(), mib(r.cold.peakRSS), mib(r.cold.endRSS), mib(r.cold.heapInuse), round(nft.saveNAT), round(legacy.saveNAT))
	b.Logf("flips: %s", describeFlips(r.flips))
	goalFlip := ratio(flip, own.partial.wall) <= goalRatio && (n < 10000 || flip <= goalFlip10k)
	b.Logf("flip: median %s (berth's sync %s); floor %s nft (partial payload %d bytes), %s legacy → %.2f× the %s floor (goal ≤ %.1f×, ≤ %s at 10k: %s)",
		round(flip), round(flipSync), round(nft.partial.wall), r.payload.flip.Bytes(), round(legacy.partial.wall),
		ratio(flip, own.partial.wall), r.mode, goalRatio, goalFlip10k, verdict(goalFlip))
	b.Logf("incremental: %d services created in %s while berth ran; all in the kernel %s after the last one (%d full + %d partial syncs, CPU %.2f s + %.2f s children, RSS peak %.1f MiB)",
		n, round(r.incr.create), round(r.incr.latency), r.incr.fullSyncs, r.incr.partialSyncs,
		r.incr.cpu.own.Seconds(), r.incr.cpu.children.Seconds(), mib(r.incr.peakRSS))
	b.Logf("removal: deleting the %d services took %s until berth had removed their rules; berth spent %s of its %s up in %d full syncs (%.0f%%)",
		n, round(r.removal), round(r.fullSyncTime), round(r.berthUp), r.fullSyncs, 100*ratio(r.fullSyncTime, r.berthUp))
	if n >= 10000 {
		b.Logf("memory: RSS peak %.1f MiB (goal ≤ %d MiB: %s)", mib(peak), goalRSS10k>>20, verdict(peak <= goalRSS10k))
	}
}

// describeFlips renders each flip on one line: latency, berth's own
// programming metric, the syncs it took, and whether berth had settled.
func describeFlips(flips []flipResult) string {
	var parts []string
	for _, f := range flips {
		kind := fmt.Sprintf("%d partial", f.partialSyncs)
		if f.fullSyncs > 0 {
			kind = fmt.Sprintf("%d full + %d partial", f.fullSyncs, f.partialSyncs)
		}
		settled := ""
		if f.busy {
			settled = ", berth busy before"
		}
		parts = append(parts, fmt.Sprintf("%s (metric %s, API %s; %s sync(s) of %s, %.0f B%s)",
			round(f.latency), round(f.programming), round(f.api), kind, round(f.sync), f.bytes, settled))
	}
	return strings.Join(parts, "; ")
}

// summary renders one row per size.
func summary(results []*sizeResult) string {
	var sb strings.Builder
	w := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "services\trules\tpayload\tcold wall\tcold sync\tfloor nft\tfloor legacy\t× floor\tflip\tfloor nft\tfloor legacy\t× floor\tincr\tremoval\tRSS peak\tcold CPU\t")
	for _, r := range results {
		nft, legacy, own := r.floors["nft"], r.floors["legacy"], r.floors[r.mode]
		latency, _ := r.flipLatencies()
		flip := median(latency)
		fmt.Fprintf(w, "%d\t%d\t%.1f MB\t%s\t%s\t%s\t%s\t%.2f\t%s\t%s\t%s\t%.2f\t%s\t%s\t%.0f MiB\t%.1f s\t\n",
			r.services, r.payload.rules, float64(r.payload.full.Bytes())/1e6,
			round(r.cold.wall), round(r.cold.sync), round(nft.full.wall), round(legacy.full.wall), ratio(r.cold.sync, own.full.wall),
			round(flip), round(nft.partial.wall), round(legacy.partial.wall), ratio(flip, own.partial.wall),
			round(r.incr.latency), round(r.removal), mib(max(r.cold.peakRSS, r.incr.peakRSS)), r.cold.cpu.total().Seconds())
	}
	_ = w.Flush()
	return sb.String()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func mib(n uint64) float64 { return float64(n) / (1 << 20) }

// round keeps a duration readable: ms below a minute, else 0.1 s.
func round(d time.Duration) time.Duration {
	if d < time.Minute {
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}

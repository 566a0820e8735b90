package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// startupPagesDelay is how long after the node part first turns healthy
// berth gives back the pages of its binary that only starting needed; a
// page given back too soon only faults in again from the page cache. The
// service proxy gives them back once more as its first sync starts: on a
// large cluster that sync is berth's memory peak, and it comes before the
// node part is healthy (docs/proxy.md, Memory, has how much they weigh).
const startupPagesDelay = 5 * time.Second

// releaseStartupPages waits until healthy passes, then startupPagesDelay,
// then asks the kernel to reclaim the pages of berth's own executable that
// are resident (madvise MADV_PAGEOUT on its read-only mappings).
//
// Why: starting touches a third of the binary's code, type data and
// function tables once: the Kubernetes API scheme registers every API
// group, protobuf registers every message type. Those pages stay mapped,
// and counted in berth's RSS, until memory runs short, although a running
// berth never reads most of them again: right after start, most of
// berth's RSS is such file-backed pages (docs/proxy.md, Memory). Giving
// them back leaves the pages berth keeps using, which fault back in as they
// are touched (from the page cache, or the disk if the cache dropped them
// too). It changes nothing else: the pages are clean file pages, not data.
func releaseStartupPages(ctx context.Context, healthy func() error, clk clock.WithTicker) {
	ticker := clk.NewTicker(time.Second)
	defer ticker.Stop()
	for healthy() != nil {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C():
		}
	}
	select {
	case <-ctx.Done():
		return
	case <-clk.After(startupPagesDelay):
	}
	releaseExecutablePages(ctx, "started")
}

// releaseExecutablePages pages out the executable's resident pages now
// (see releaseStartupPages); when tells the log why now.
func releaseExecutablePages(ctx context.Context, when string) {
	log := klog.FromContext(ctx)
	released, err := pageOutExecutable()
	if err != nil {
		log.V(2).Info("Could not release the startup pages of the binary", "when", when, "err", err)
		return
	}
	log.V(2).Info("Released the startup pages of the binary", "when", when, "bytes", released)
}

// pageOutExecutable applies MADV_PAGEOUT to the read-only mappings of the
// running executable and returns how many bytes they span.
func pageOutExecutable() (int, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, err
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	total := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "lo-hi perms offset dev inode path"
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[5] != exe || strings.Contains(fields[1], "w") {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_PAGEOUT); errno != 0 {
			return total, fmt.Errorf("madvise %s: %w", fields[0], errno)
		}
		total += int(end - start)
	}
	return total, sc.Err()
}

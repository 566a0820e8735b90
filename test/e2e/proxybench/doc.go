// Package proxybench benchmarks berth's service proxy on the test bed: a
// real apiserver, berth running as the kubelet of one joined node, and the
// node's own netfilter. For each size it creates that many ClusterIP
// Services with one port and, for each, an EndpointSlice of its own (no
// selector; five ready endpoints with made-up pod addresses that never
// receive traffic), and measures:
//
//   - cold start: berth stopped, the objects created, berth started; the
//     time until its first full sync has put them in the kernel, and that
//     sync's own duration, CPU and memory;
//   - one endpoint flip with the objects present: one EndpointSlice's
//     endpoint address changed, until the change is in the kernel;
//   - incremental: the objects created while berth runs, from the last
//     creation until everything is in the kernel;
//   - the floors, in the same run: the same full and partial payloads
//     (rendered by netrules/iptables from the same objects) applied by bare
//     iptables-restore --noflush in a fresh network namespace, with the
//     nf_tables and the legacy backend. The partial payload goes in once
//     the built-in chains jump to berth's chains, as on a node: with
//     nf_tables, every commit that adds a jump makes the kernel walk all
//     the chains reachable from the built-in ones (at 5,000 services a
//     flip costs about 20 ms without the jumps and 65 ms with them), so a
//     floor without them measures a ruleset no proxy could use.
//
// Every address the rules mention stays inside the bed's namespaces and the
// benchmark's own: nothing is sent anywhere.
//
// The benchmark needs root and brings up its own bed (one node) only when
// benchmarks are asked for. Environment:
//
//	BERTH_BENCH_SERVICES  sizes to run, comma-separated (default "1000,5000")
//	BERTH_BENCH_FLIPS     endpoint flips per size (default 3; the median counts)
//	BERTH_BENCH_IPTABLES  "legacy" makes the node's iptables the legacy one
//	                      before berth starts (default: the machine's, nf_tables)
//
// With nf_tables, iptables-restore slows down superlinearly: a full payload
// takes about 1.3 s at 1,000 services, 1.5 minutes at 5,000 and 8 to 10
// minutes at 10,000 on the 2-core test machines (legacy: 0.2 s, 1 s, 3 s).
// `make bench` runs the default sizes in about 10 minutes; 10,000 services
// take about 30 minutes more with one flip:
//
//	BERTH_BENCH_SERVICES=10000 BERTH_BENCH_FLIPS=1 go test -run '^$' -bench ServiceProxy -timeout 2h ./test/e2e/proxybench/
//
// A size whose estimated duration does not fit in what is left of the go
// test timeout is skipped, saying so, rather than killed halfway.
package proxybench

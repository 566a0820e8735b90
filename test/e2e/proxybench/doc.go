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
//     nf_tables and the legacy backend.
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
// With nf_tables, iptables-restore slows down superlinearly: 5,000 services
// take minutes and 10,000 tens of minutes per full sync, so the sizes are
// chosen per run and the go test timeout must cover them:
//
//	go test -run '^$' -bench ServiceProxy -timeout 60m ./test/e2e/proxybench/
//	BERTH_BENCH_SERVICES=10000 go test -run '^$' -bench ServiceProxy -timeout 3h ./test/e2e/proxybench/
//
// A size whose estimated duration does not fit in what is left of the
// timeout is skipped, saying so, rather than killed halfway.
package proxybench

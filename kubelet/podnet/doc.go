// Package podnet is berth's built-in pod network, for clusters without a CNI
// add-on: pods on the nodes of one L2 segment reach each other through
// plain routes.
//
// From this Node's spec.podCIDRs it writes a CNI network config list (bridge
// with host-local IPAM, then portmap) into the CNI config directory, where
// containerd's CRI plugin picks it up; and it keeps one route per other
// Node's podCIDR via that Node's InternalIP (netrules/link). Masquerading
// pod traffic that leaves the cluster is the proxy's job, not the bridge's.
// The bridge plugin, as the pods' gateway, turns on IP forwarding.
//
// The loop is the house's: node informer events only enqueue; one worker
// syncs the config and the routes; a failed sync is retried with backoff and
// a good one is repeated every ResyncPeriod, which repairs drift (a route
// someone deleted). Ready reports whether pods can get an address: the
// Node's NetworkReady condition is built from it.
package podnet

// Package link is berth's netlink side: the routes that carry pod traffic to
// other nodes (another node's podCIDR via that node's InternalIP).
//
// Routes berth installs carry a route protocol number of berth's own
// (Protocol), so berth can list and remove exactly its own routes and never
// touches a route someone else made: `ip route show proto 190` lists them.
// The Routes interface is what the rest of berth uses; NewRoutes gives the
// kernel implementation and netrules/link/testing a fake that keeps state,
// plus the contract suite both must pass.
package link

// Package conntrack removes connection-tracking entries that would keep UDP
// flows on a path that no longer exists, through netlink. UDP has no
// connection to close: without this a client that keeps sending to a
// service whose endpoint went away (or that had no endpoint when it started)
// keeps its conntrack entry, and with it the old NAT, for as long as it
// keeps sending. Cleaner implements proxy.Conntrack; netrules/conntrack/testing
// has a fake that keeps a flow table and the contract suite both pass.
package conntrack

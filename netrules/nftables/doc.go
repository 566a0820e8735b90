// Package nftables is the nftables backend of berth's service proxy.
package nftables

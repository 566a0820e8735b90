// Package agent is the guest half of a berth test VM's control channel: the
// protocol the host speaks over a virtio-serial port, and the server that a
// small static program (cmd/berth-vm-agent) runs inside the guest.
//
// The protocol is one JSON object per line in each direction. The host
// sends Requests, each with an ID of its own; the guest answers each with a
// Response carrying the same ID, in any order. A line that does not parse is
// skipped: bytes the host wrote while the guest rebooted may arrive torn, and
// a request that is lost that way is simply never answered (the host's
// context bounds every call). Every Response carries the guest's boot ID, so
// the host tells a rebooted guest from the one it knew.
package agent

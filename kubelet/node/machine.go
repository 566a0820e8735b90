package node

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Machine reads facts about the machine the node runs on. The real one
// reads /proc, /sys, /etc and statfs; tests use a fake.
type Machine interface {
	// Info returns what does not change while the node runs.
	Info() (MachineInfo, error)
	// Usage returns what the pressure conditions are computed from.
	Usage(rootDir string) (Usage, error)
	// DefaultRouteIPs returns the addresses of the interface that holds
	// the default route, IPv4 first: the node's address when --node-ip is
	// not given.
	DefaultRouteIPs() ([]net.IP, error)
}

// MachineInfo is what the Node's nodeInfo and capacity are made of.
type MachineInfo struct {
	// CPUs is the number of logical CPUs.
	CPUs int
	// MemoryBytes is the machine's memory (MemTotal).
	MemoryBytes int64
	// KernelVersion is the kernel release (uname -r).
	KernelVersion string
	// OSImage is PRETTY_NAME of /etc/os-release.
	OSImage string
	// MachineID is /etc/machine-id.
	MachineID string
	// SystemUUID is the DMI product UUID, when readable.
	SystemUUID string
	// BootID changes at every boot.
	BootID string
	// Architecture is GOARCH.
	Architecture string
}

// Usage is the machine's current use of what eviction thresholds watch.
type Usage struct {
	// MemoryAvailableBytes is MemAvailable.
	MemoryAvailableBytes int64
	// FSCapacityBytes and FSAvailableBytes are those of the filesystem
	// holding the kubelet root directory.
	FSCapacityBytes, FSAvailableBytes int64
	// FSInodes and FSInodesFree are its inode counts.
	FSInodes, FSInodesFree int64
	// PIDMax is kernel.pid_max, PIDsInUse the number of processes.
	PIDMax, PIDsInUse int64
}

// HostMachine is the Machine berth runs on.
type HostMachine struct{}

// Info implements Machine.
func (HostMachine) Info() (MachineInfo, error) {
	mem, err := meminfo("MemTotal")
	if err != nil {
		return MachineInfo{}, err
	}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return MachineInfo{}, fmt.Errorf("uname: %w", err)
	}
	info := MachineInfo{
		CPUs:          runtime.NumCPU(),
		MemoryBytes:   mem,
		KernelVersion: unix.ByteSliceToString(uts.Release[:]),
		OSImage:       osImage(),
		MachineID:     readTrimmed("/etc/machine-id"),
		SystemUUID:    strings.ToUpper(readTrimmed("/sys/class/dmi/id/product_uuid")),
		BootID:        readTrimmed("/proc/sys/kernel/random/boot_id"),
		Architecture:  runtime.GOARCH,
	}
	return info, nil
}

// Usage implements Machine.
func (HostMachine) Usage(rootDir string) (Usage, error) {
	avail, err := meminfo("MemAvailable")
	if err != nil {
		return Usage{}, err
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(rootDir, &fs); err != nil {
		return Usage{}, fmt.Errorf("statfs %s: %w", rootDir, err)
	}
	pidMax, err := strconv.ParseInt(readTrimmed("/proc/sys/kernel/pid_max"), 10, 64)
	if err != nil {
		return Usage{}, fmt.Errorf("read pid_max: %w", err)
	}
	procs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return Usage{}, err
	}
	return Usage{
		MemoryAvailableBytes: avail,
		FSCapacityBytes:      int64(fs.Blocks) * fs.Bsize,
		FSAvailableBytes:     int64(fs.Bavail) * fs.Bsize,
		FSInodes:             int64(fs.Files),
		FSInodesFree:         int64(fs.Ffree),
		PIDMax:               pidMax,
		PIDsInUse:            int64(len(procs)),
	}, nil
}

// DefaultRouteIPs implements Machine: it finds the interface of the IPv4
// default route in /proc/net/route.
func (HostMachine) DefaultRouteIPs() ([]net.IP, error) {
	data, err := os.ReadFile("/proc/net/route")
	if err != nil {
		return nil, fmt.Errorf("read routes: %w", err)
	}
	iface, err := defaultRouteInterface(data)
	if err != nil {
		return nil, err
	}
	link, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, fmt.Errorf("default route interface %s: %w", iface, err)
	}
	addrs, err := link.Addrs()
	if err != nil {
		return nil, fmt.Errorf("addresses of %s: %w", iface, err)
	}
	return globalIPs(addrs), nil
}

// defaultRouteInterface returns the interface of the first default route
// in a /proc/net/route table.
func defaultRouteInterface(table []byte) (string, error) {
	s := bufio.NewScanner(bytes.NewReader(table))
	for s.Scan() {
		f := strings.Fields(s.Text())
		// Iface Destination Gateway Flags ... Mask
		if len(f) >= 8 && f[1] == "00000000" && f[7] == "00000000" {
			return f[0], nil
		}
	}
	return "", fmt.Errorf("no IPv4 default route: set the node's address with --node-ip")
}

// globalIPs returns the global unicast addresses, IPv4 first.
func globalIPs(addrs []net.Addr) []net.IP {
	var v4, v6 []net.IP
	for _, a := range addrs {
		ipnet, ok := a.(*net.IPNet)
		if !ok || !ipnet.IP.IsGlobalUnicast() {
			continue
		}
		if ipnet.IP.To4() != nil {
			v4 = append(v4, ipnet.IP.To4())
		} else {
			v6 = append(v6, ipnet.IP)
		}
	}
	return append(v4, v6...)
}

// meminfo returns a /proc/meminfo field in bytes.
func meminfo(field string) (int64, error) {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, fmt.Errorf("read meminfo: %w", err)
	}
	return parseMeminfo(data, field)
}

func parseMeminfo(data []byte, field string) (int64, error) {
	s := bufio.NewScanner(bytes.NewReader(data))
	for s.Scan() {
		f := strings.Fields(s.Text())
		if len(f) >= 2 && f[0] == field+":" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("meminfo %s: %w", field, err)
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("meminfo: no %s", field)
}

// osImage returns PRETTY_NAME from os-release, as kubelet reports it.
func osImage() string {
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
				return strings.Trim(v, `"'`)
			}
		}
	}
	return "Linux"
}

func readTrimmed(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

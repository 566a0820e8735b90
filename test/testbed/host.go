package testbed

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// boundPaths are the paths of a host that live in the host's own folder
// (hosts/NAME/fs/PATH outside): what kubeadm, containerd and the kubelet
// write, and /run/berth, through which the bed hands files to the host.
var boundPaths = []string{
	"/etc/kubernetes",
	"/etc/cni/net.d",
	"/var/lib/kubelet",
	"/var/lib/containerd",
	"/var/lib/cni",
	"/var/lib/etcd",
	"/var/log/pods",
	"/var/log/containers",
	"/run/containerd",
	"/run/berth",
	"/usr/local/bin",
}

// nsKinds are the namespaces of a host with mounts of its own, as named by
// unshare's and nsenter's options.
var nsKinds = []string{"net", "mount", "uts"}

// nsFile returns the file that pins namespace kind of host.
func (tb *Testbed) nsFile(host, kind string) string {
	return filepath.Join(tb.runDir(), "ns", host+"."+kind)
}

// HostDir returns the folder that holds host's own files.
func (tb *Testbed) HostDir(host string) string {
	return filepath.Join(tb.runDir(), "hosts", host)
}

// HostPath returns where a path of host p (one of the bound paths, or below
// one) is seen from outside the host.
func (tb *Testbed) HostPath(host, p string) (string, error) {
	clean := filepath.Clean(p)
	for _, b := range boundPaths {
		if clean == b || strings.HasPrefix(clean, b+"/") {
			return filepath.Join(tb.HostDir(host), "fs", clean), nil
		}
	}
	return "", fmt.Errorf("path %s of host %s is not shared with the outside (shared: %s)", p, host, strings.Join(boundPaths, ", "))
}

// Command returns a command that runs args on host: in its network, mount
// and UTS namespaces, in its cgroup, with / as working directory.
func (tb *Testbed) Command(ctx context.Context, host string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "/bin/sh", tb.wrap(host, args)...)
}

// wrap returns the arguments for /bin/sh that move the shell into host's
// cgroup (so that Down finds whatever it starts) and exec args there.
func (tb *Testbed) wrap(host string, args []string) []string {
	procs := filepath.Join(trackingHierarchy(), cgroupParent(tb.cfg.Name, host), "cgroup.procs")
	enter := []string{"nsenter", "--net=" + tb.nsFile(host, "net"), "--wd=/"}
	if h, ok := tb.host(host); !ok || h.Mounts {
		enter = append(enter, "--mount="+tb.nsFile(host, "mount"), "--uts="+tb.nsFile(host, "uts"))
	}
	script := fmt.Sprintf(`echo $$ > %s && exec "$@"`, shellQuote(procs))
	return append([]string{"-c", script, "sh"}, append(append(enter, "--"), args...)...)
}

// host returns the recorded state of the named host.
func (tb *Testbed) host(name string) (HostState, bool) {
	for _, h := range tb.state.Hosts {
		if h.Name == name {
			return h, true
		}
	}
	return HostState{}, false
}

// createHost creates host h's namespaces and folders and records it.
func (tb *Testbed) createHost(ctx context.Context, h HostState) error {
	dir := tb.HostDir(h.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("host %s: %w", h.Name, err)
	}
	if err := os.MkdirAll(filepath.Join(trackingHierarchy(), cgroupParent(tb.cfg.Name, h.Name)), 0o755); err != nil {
		return fmt.Errorf("host %s: create cgroup: %w", h.Name, err)
	}
	kinds := []string{"net"}
	if h.Mounts {
		kinds = nsKinds
		if err := tb.prepareHostFS(h); err != nil {
			return err
		}
	}
	args := []string{}
	for _, k := range kinds {
		f := tb.nsFile(h.Name, k)
		if err := os.WriteFile(f, nil, 0o444); err != nil {
			return fmt.Errorf("host %s: %w", h.Name, err)
		}
		args = append(args, "--"+k+"="+f)
	}
	// Record the host before its namespaces exist, so that Down removes
	// whatever part of it was made.
	tb.state.Hosts = append(tb.state.Hosts, h)
	if err := writeState(tb.state); err != nil {
		return err
	}
	args = append(args, "--propagation", "private", "/bin/sh", "-euc", tb.setupScript(h))
	out, err := exec.CommandContext(ctx, "unshare", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("host %s: create namespaces: %w: %s", h.Name, err, out)
	}
	return nil
}

// prepareHostFS creates the folders behind a host's mounts and the files
// that make it a host of its own: hostname, machine-id, hosts.
func (tb *Testbed) prepareHostFS(h HostState) error {
	dir := tb.HostDir(h.Name)
	dirs := []string{"stage", "overlay/etc", "overlay/etc.work", "overlay/var", "overlay/var.work"}
	for _, b := range boundPaths {
		dirs = append(dirs, filepath.Join("fs", b))
	}
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return fmt.Errorf("host %s: %w", h.Name, err)
		}
	}
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return fmt.Errorf("host %s: machine id: %w", h.Name, err)
	}
	files := map[string]string{
		"hostname":   h.Name + "\n",
		"machine-id": hex.EncodeToString(id) + "\n",
		"hosts":      tb.hostsFile(),
		// Name lookups stay on the LAN: the gateway answers DNS with
		// "port unreachable", so a lookup fails at once and no query
		// leaves the bed's namespaces.
		"resolv.conf": "nameserver " + lanGateway.String() + "\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, "overlay/etc", name), []byte(content), 0o644); err != nil {
			return fmt.Errorf("host %s: %w", h.Name, err)
		}
	}
	return nil
}

// hostsFile renders /etc/hosts for the bed's hosts.
func (tb *Testbed) hostsFile() string {
	var b strings.Builder
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost\n")
	fmt.Fprintf(&b, "%s\t%s\n", controlPlaneIP, ControlPlaneHost)
	for i := 1; i <= tb.cfg.Nodes; i++ {
		fmt.Fprintf(&b, "%s\t%s\n", nodeIP(i), NodeName(i))
	}
	return b.String()
}

// setupScript returns the shell script that runs inside a new host's
// namespaces. The new mounts are assembled on a staging tmpfs first and then
// moved into place, so that the bind mounts' sources are resolved before
// /etc and /var are overlaid (the run folder may live below /var).
func (tb *Testbed) setupScript(h HostState) string {
	if !h.Mounts {
		return "true"
	}
	dir := shellQuote(tb.HostDir(h.Name))
	var b strings.Builder
	fmt.Fprintf(&b, "N=%s\nS=\"$N/stage\"\n", dir)
	b.WriteString(`mount -n -t tmpfs -o mode=0755,size=1m berth-stage "$S"
mkdir "$S/etc" "$S/var" "$S/run" "$S/sys"
mount -n -t overlay berth-etc -o "lowerdir=/etc,upperdir=$N/overlay/etc,workdir=$N/overlay/etc.work" "$S/etc"
mount -n -t overlay berth-var -o "lowerdir=/var,upperdir=$N/overlay/var,workdir=$N/overlay/var.work" "$S/var"
mount -n -t tmpfs -o mode=0755 berth-run "$S/run"
mount -n -t sysfs berth-sys "$S/sys"
mount -n --rbind /sys/fs/cgroup "$S/sys/fs/cgroup"
`)
	for _, p := range boundPaths {
		if staged(p) {
			fmt.Fprintf(&b, "mkdir -p \"$S\"%[1]s && mount -n --bind \"$N/fs\"%[1]s \"$S\"%[1]s\n", shellQuote(p))
		} else {
			// Outside the replaced trees: mounted in place (it exists
			// outside, e.g. /usr/local/bin).
			fmt.Fprintf(&b, "mount -n --bind \"$N/fs\"%[1]s %[1]s\n", shellQuote(p))
		}
	}
	for _, top := range moveOrder(tb.HostDir(h.Name)) {
		fmt.Fprintf(&b, "mount -n --move \"$S\"%[1]s %[1]s\n", top)
	}
	fmt.Fprintf(&b, "echo %s > /proc/sys/kernel/hostname\n", shellQuote(h.Name))
	b.WriteString("echo 1 > /proc/sys/net/ipv4/ip_forward\n")
	return b.String()
}

// staged tells whether p lies in one of the trees a host gets a copy of.
func staged(p string) bool {
	for _, top := range []string{"/etc", "/run", "/sys", "/var"} {
		if strings.HasPrefix(p, top+"/") {
			return true
		}
	}
	return false
}

// moveOrder returns the order in which the staged trees replace the
// outside ones: the tree that holds the staging folder itself goes last, as
// the staging folder's path no longer leads to it once its tree is replaced.
func moveOrder(hostDir string) []string {
	order := []string{"/etc", "/run", "/sys", "/var"}
	for i, top := range order {
		if strings.HasPrefix(hostDir, top+"/") {
			order = append(append(order[:i:i], order[i+1:]...), top)
			break
		}
	}
	return order
}

// removeHost stops everything on host h and releases its namespaces and
// cgroups. The host's folder stays until the run folder is removed.
func (tb *Testbed) removeHost(h HostState) error {
	var errs []error
	cg := filepath.Join(trackingHierarchy(), cgroupParent(tb.cfg.Name, h.Name))
	if err := killCgroup(cg, stopGrace); err != nil {
		errs = append(errs, fmt.Errorf("host %s: %w", h.Name, err))
	}
	for _, k := range nsKinds {
		f := tb.nsFile(h.Name, k)
		if err := unix.Unmount(f, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("host %s: release %s namespace: %w", h.Name, k, err))
		}
	}
	if err := removeCgroupTrees(cgroupParent(tb.cfg.Name, h.Name)); err != nil {
		errs = append(errs, fmt.Errorf("host %s: %w", h.Name, err))
	}
	return errors.Join(errs...)
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Namespaces returns the namespaces the bed's hosts own, in the form
// /proc/PID/ns/* links read ("net:[4026532280]"), so a test can check that
// nothing holds them after Down.
func (tb *Testbed) Namespaces() ([]string, error) {
	procName := map[string]string{"net": "net", "mount": "mnt", "uts": "uts"}
	var ids []string
	for _, h := range tb.state.Hosts {
		for _, k := range nsKinds {
			var st unix.Stat_t
			err := unix.Stat(tb.nsFile(h.Name, k), &st)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("host %s: %w", h.Name, err)
			}
			ids = append(ids, fmt.Sprintf("%s:[%d]", procName[k], st.Ino))
		}
	}
	return ids, nil
}

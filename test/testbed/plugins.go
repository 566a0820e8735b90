package testbed

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// PluginsEnv names the environment variable that points the tests at the
// plugin binaries test/tools/build-plugins.sh builds (csimock,
// sample-device-plugin, csi-sanity). `make test` and `make bench` set it.
const PluginsEnv = "BERTH_PLUGINS_DIR"

// commLen is the length the kernel truncates a process's command name
// (/proc/PID/comm) to.
const commLen = 15

// PluginsDir returns the folder of the plugin binaries, $BERTH_PLUGINS_DIR,
// or an error that says how to build them when it is unset.
func PluginsDir() (string, error) {
	dir := os.Getenv(PluginsEnv)
	if dir == "" {
		return "", errors.New(PluginsEnv + " is not set: build the plugins with `make plugins`, or run the tests with " +
			PluginsEnv + "=$(test/tools/build-plugins.sh " + filepath.Join(CacheDir(), "plugins") + " | tail -n1)")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("%s=%s: %w", PluginsEnv, dir, err)
	}
	return abs, nil
}

// PluginBinary returns the path of the plugin binary name (csimock,
// sample-device-plugin or csi-sanity) in PluginsDir, checking that it is
// there.
func PluginBinary(name string) (string, error) {
	dir, err := PluginsDir()
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, name)
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("plugin %s (%s=%s): %w", name, PluginsEnv, dir, err)
	}
	return path, nil
}

// StartPlugin starts the plugin binary name from PluginsDir on node, as root
// in the node's namespaces and cgroup, with args; its log is
// LogDir()/NODE-NAME.log and Down stops it. The binary runs from the cache
// folder: a node sees the machine's file system but for its own paths
// (/var/lib/kubelet, /run, ...), so nothing is copied. The mock CSI driver
// (flags, calls.jsonl and fault files: test/tools/plugins/csimock), with its
// control folder where the test reads it (HostPath):
//
//	tb.StartPlugin(node, "csimock", "--name=csi-mock.berth.test", "--node-id="+node,
//	    "--endpoint=/var/lib/kubelet/plugins/csi-mock.berth.test/csi.sock",
//	    "--registration-socket=/var/lib/kubelet/plugins_registry/csi-mock.berth.test-reg.sock",
//	    "--control-dir=/var/lib/kubelet/plugins/csi-mock.berth.test/control")
//
// The sample device plugin takes no flags; it registers at once with
// /var/lib/kubelet/device-plugins/kubelet.sock (which must be served
// already) and advertises example.com/resource: Dev-1 and Dev-2.
// Environment variables go first through env(1):
//
//	tb.StartPlugin(node, "sample-device-plugin")
//	bin, _ := PluginBinary("sample-device-plugin")
//	tb.Start(node, "sample-device-plugin", "env", "PLUGIN_SOCK_DIR=/var/lib/kubelet/device-plugins", bin)
func (tb *Testbed) StartPlugin(node, name string, args ...string) (*Process, error) {
	bin, err := PluginBinary(name)
	if err != nil {
		return nil, err
	}
	return tb.Start(node, name, append([]string{bin}, args...)...)
}

// StopPlugin sends sig to the plugin processes started from the binary name
// on node and waits up to timeout until they are gone (see StopProcesses;
// this truncates name as the kernel does a command name).
func (tb *Testbed) StopPlugin(node, name string, sig syscall.Signal, timeout time.Duration) error {
	if len(name) > commLen {
		name = name[:commLen]
	}
	return tb.StopProcesses(node, name, sig, timeout)
}

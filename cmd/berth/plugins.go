package main

import (
	"context"
	"os"
	"path/filepath"

	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/berthnode/berth/kubelet/csi"
	"github.com/berthnode/berth/kubelet/devices"
	"github.com/berthnode/berth/kubelet/plugins"
	"github.com/berthnode/berth/kubelet/podresources"
)

// nodePlugins serve the node's plugins: the CSI node side, the device
// manager, and the plugin watcher that hands each its plugins.
type nodePlugins struct {
	csi     *csi.Manager
	devices *devices.Manager
	watcher *pluginWatcher
}

// newNodePlugins builds them. statusChanged asks for a node status update:
// the volumes in use or the device plugins' resources changed. The devices
// of pods admitted before a restart are restored, so they stay theirs.
func newNodePlugins(ctx context.Context, s *nodeSettings, client kubernetes.Interface, recorder record.EventRecorder, clk clock.RealClock, statusChanged func()) (*nodePlugins, error) {
	csiNode, err := newCSI(s, client, recorder, clk, statusChanged)
	if err != nil {
		return nil, err
	}
	devs, err := devices.New(devices.Config{
		Dir:      filepath.Join(s.rootDir, "device-plugins"),
		Clock:    clk,
		OnChange: statusChanged,
	})
	if err != nil {
		return nil, err
	}
	devs.Restore(ctx)
	// CSI drivers go to the CSI node side, device plugins to the device
	// manager.
	watcher, err := newPluginWatcher(s.rootDir, map[string]plugins.Handler{
		plugins.TypeCSI:    csiNode,
		plugins.TypeDevice: devs.Handler(),
	}, clk)
	if err != nil {
		return nil, err
	}
	return &nodePlugins{csi: csiNode, devices: devs, watcher: watcher}, nil
}

// run runs them in g, with the pod resources API over pods, until ctx
// ends.
func (p *nodePlugins) run(ctx context.Context, g *errgroup.Group, pods podresources.Pods) error {
	podResources, err := podresources.New(podresources.Config{
		Dir: filepath.Join(p.watcher.rootDir, "pod-resources"), Pods: pods, Devices: p.devices,
	})
	if err != nil {
		return err
	}
	g.Go(func() error { return p.csi.Run(ctx) })
	g.Go(func() error { return p.devices.Run(ctx) })
	g.Go(func() error { return podResources.Run(ctx) })
	g.Go(func() error { return p.watcher.run(ctx) })
	return nil
}

// pluginWatcher registers the node's plugins (CSI drivers, device plugins)
// found in the registration directory of a kubelet root directory.
type pluginWatcher struct {
	*plugins.Watcher
	rootDir string
}

// newPluginWatcher returns the watcher of <rootDir>/plugins_registry that
// registers the plugins with handlers, by plugin type (plugins.TypeCSI,
// plugins.TypeDevice). A plugin of a type without a handler is refused,
// told why, and logged.
func newPluginWatcher(rootDir string, handlers map[string]plugins.Handler, clk clock.WithDelayedExecution) (*pluginWatcher, error) {
	w, err := plugins.New(plugins.Config{
		Dir:      plugins.RegistryDir(rootDir),
		Handlers: handlers,
		Clock:    clk,
	})
	if err != nil {
		return nil, err
	}
	return &pluginWatcher{Watcher: w, rootDir: rootDir}, nil
}

// run creates the plugin directories, as the kubelet does at start
// (<root>/plugins for the plugins' own sockets, <root>/plugins_registry
// for registration, both 0750), and runs the watcher until ctx ends. A
// watcher that cannot watch its directory (inotify exhausted, say) is
// logged and fails the health check, but does not stop the pods, which
// run without plugins.
func (w *pluginWatcher) run(ctx context.Context) error {
	log := klog.FromContext(ctx)
	// Plugins create their own directories under it; the registry
	// directory's failure, which comes next, stops the watcher.
	dir := plugins.PluginsDir(w.rootDir)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		log.Error(err, "Cannot create the plugin directory", "dir", dir)
	}
	if err := w.Run(ctx); err != nil {
		log.Error(err, "Plugin registration stopped: CSI drivers and device plugins cannot register until berth restarts")
	}
	return nil
}

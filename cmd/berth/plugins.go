package main

import (
	"context"
	"os"

	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/berthnode/berth/kubelet/plugins"
)

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

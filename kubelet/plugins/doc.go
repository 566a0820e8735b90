// Package plugins finds the node's plugins, CSI drivers and device plugins,
// through the kubelet's plugin registration API (pluginregistration/v1).
//
// A plugin announces itself by creating a Unix socket in the registration
// directory (<root>/plugins_registry for the kubelet's root dir) that serves
// the Registration service. The Watcher calls GetInfo on every new socket,
// checks the answer, hands the plugin to the Handler of its type, and tells
// the plugin the outcome with NotifyRegistrationStatus. When the socket goes
// away, or is replaced by a new one, the Handler deregisters the plugin. The
// directory is read again from scratch at start, so plugins found before a
// restart of berth register again.
//
// # Watching
//
// The Watcher watches the directory and its subdirectories with inotify
// (fsnotify), as the kubelet's plugin watcher does. Files that are not
// sockets are ignored, and so are names starting with a dot (a plugin may
// make its socket under a dot-name and rename it into place). A socket is
// known by its path and its file (device, inode, change time): a new file
// at the same path is a plugin that restarted, which is deregistered and
// registered again, in that order, even when its old socket's removal was
// never seen (a rename over it). When inotify loses events (a queue
// overflow), the whole directory is read again. A removed registration
// directory is created again once the kernel reports its removal (which it
// does when no plugin's listener holds it any more).
//
// # Registering
//
// Each registration runs in its own goroutine, so that a socket that never
// answers, or answers garbage, holds up nothing but itself: the gRPC calls
// are bounded by Config.Timeout (connecting included), and one Run loop
// owns the state, fed by the goroutines' results. For one socket the
// steps come one after the other; for different sockets they run at once,
// so handlers are safe for concurrent use.
//
// The answer of GetInfo must name a type with a Handler, a name and at
// least one version; an empty endpoint means the registration socket
// itself. Then Handler.Validate and Handler.Register are called, and the
// plugin is told PluginRegistered, or the reason it is not registered.
// When telling it fails, the plugin is deregistered again: a plugin that
// does not know it is registered may not serve (the kubelet does the
// same).
//
// Every failure is retried, as long as the socket is there, after a back-off
// that starts at Config.MinBackoff (500 ms) and doubles up to
// Config.MaxBackoff (1 min): a plugin whose socket appears between bind and
// listen, a plugin that was not ready, a handler that failed for a while.
// A new socket at the path starts again without waiting. Each failure is
// logged with the socket's path, and the plugin's name and type when it
// answered GetInfo; a failure that repeats with the same message is logged
// again only at verbosity 2. A new socket that does not listen yet is
// expected once, and logged at verbosity 2 the first time.
//
// Watcher.Collector gives the kubelet's metric plugin_manager_total_plugins:
// the sockets seen, and the plugins registered.
//
// Plugins stay registered with their handlers when Run returns: berth is
// going down, and the next Run registers them again.
package plugins

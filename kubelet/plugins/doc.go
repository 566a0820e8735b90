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
package plugins

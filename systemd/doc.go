// Package systemd holds what runs berth as a systemd service: the unit
// files and their installation, sd_notify readiness and watchdog pings,
// levelled logging to the journal, and the logind inhibitor lock for
// graceful node shutdown.
//
// # Two units, one berth
//
// berth runs under one of two units, never both (they conflict):
//
//   - berth.service runs `berth run --config /etc/berth/config.yaml`:
//     berth with its own configuration file.
//   - kubeadm's kubelet.service runs berth as kubelet: /usr/bin/kubelet is a
//     symlink to berth, kubeadm's 10-kubeadm.conf drop-in passes kubelet's
//     flags, and berth's 20-berth.conf drop-in makes the unit Type=notify
//     with a watchdog and KillMode=process. `kubeadm join` works unchanged.
//
// [Install] writes either set of files under a root directory and returns
// the systemctl commands to run next. Both units are Type=notify with
// NotifyAccess=main, WatchdogSec=60s, TimeoutStartSec=5min, Restart=always
// and KillMode=process (a restart of berth leaves pods and volume helpers
// running).
//
// # Talking to systemd
//
// A [Notifier] sends sd_notify messages to $NOTIFY_SOCKET, or nothing when
// berth was not started as a notify service. [ReportReadiness] sends
// STATUS= while start-up conditions are pending and READY=1 once they are
// met, or after a bounded wait so that systemd never kills a berth that
// only waits for the network. A [Watchdog] sends WATCHDOG=1 every half
// $WATCHDOG_USEC while every health check passes, so that a wedged loop
// gets berth restarted. [LogToJournal] prefixes klog's lines with syslog
// priorities when stderr is the journal.
//
// # Graceful node shutdown
//
// A [ShutdownManager] does what kubelet's shutdownGracePeriod and
// shutdownGracePeriodCriticalPods do: it holds a logind "delay" inhibitor
// lock on shutdown, and when logind announces a shutdown it marks the node,
// stops regular pods, then critical pods in the last
// shutdownGracePeriodCriticalPods, and releases the lock. When logind's
// InhibitDelayMaxSec is below the grace period, it writes kubelet's logind
// drop-in (/etc/systemd/logind.conf.d/99-kubelet.conf) and reloads logind,
// as kubelet does: the grace period is configured in KubeletConfiguration,
// which `kubeadm join` writes after berth is installed, so the setting can
// only be made at run time. logind is reached through the [Logind]
// interface; package systemd/testing has a fake that keeps state and a
// contract suite that the D-Bus client passes against a private bus.
package systemd

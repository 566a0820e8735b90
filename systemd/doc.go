// Package systemd holds what runs berth as a systemd service: the unit
// files, sd_notify readiness and watchdog pings, and the inhibitor lock for
// graceful node shutdown.
package systemd

// Package testing holds fakes of the systemd services package systemd talks
// to, which keep state as the real ones do: a notification socket that
// records what a service told systemd (ready, status, watchdog pings), and
// a logind that holds inhibitor locks, announces shutdowns and applies its
// drop-in configuration on reload. RunLogindSuite is the contract every
// systemd.Logind passes: the fake, and the D-Bus client against a private
// bus.
package testing

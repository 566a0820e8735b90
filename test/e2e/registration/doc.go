// Package registration tests plugin registration on the real test bed: a
// joined berth node, and real plugins (csimock, the mock CSI driver that
// serves the registration answer, and a socket that answers junk). A
// plugin registers with berth as it would with the kubelet, through
// <root>/plugins_registry and pluginregistration/v1; sockets that hang or
// answer garbage hold up no other plugin, and each is logged with its path.
//
// The plugins here answer a type berth has no handler for ("Bogus"), so
// that the tests hold whichever handlers berth has: a refusal goes
// through every step (GetInfo, validation, NotifyRegistrationStatus)
// and is what the plugin sees. Registration with a handler is tested by
// the CSI and device plugin suites.
package registration

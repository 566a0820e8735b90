package stream

import (
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	internalapi "k8s.io/cri-api/pkg/apis"
	"k8s.io/utils/clock"
)

// DefaultHandshakeTimeout is the HandshakeTimeout of a zero Config.
const DefaultHandshakeTimeout = 30 * time.Second

// Config configures a Handler.
type Config struct {
	// Runtime is the CRI runtime service: it lists sandboxes and containers
	// and hands out the streaming URLs.
	Runtime internalapi.RuntimeService
	// HandshakeTimeout bounds what comes before the streams flow: the CRI
	// calls, connecting to the runtime's streaming server and reading its
	// answer to the upgrade. 0 means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// RootCAs verify an https streaming server that is not on loopback; nil
	// means the host's roots. A server on loopback is not verified: it is
	// the node's own runtime, usually with a self-signed certificate.
	RootCAs *x509.CertPool
	// Clock measures sessions for the log; nil means the real clock.
	Clock clock.PassiveClock
}

// Validate reports what is wrong with c, with its defaults applied.
func (c *Config) Validate() error {
	d := c.withDefaults()
	var errs []error
	if d.Runtime == nil {
		errs = append(errs, errors.New("runtime service is nil"))
	}
	if d.HandshakeTimeout < 0 {
		errs = append(errs, fmt.Errorf("HandshakeTimeout %s is negative", d.HandshakeTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid streaming config: %w", err)
	}
	return nil
}

// withDefaults returns a copy of c with the defaults of its zero fields.
func (c *Config) withDefaults() Config {
	d := *c
	if d.HandshakeTimeout == 0 {
		d.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if d.Clock == nil {
		d.Clock = clock.RealClock{}
	}
	return d
}

//go:build !linux

package ipvs

import "errors"

// errNotLinux is returned where only Linux has IPVS.
var errNotLinux = errors.New("IPVS needs Linux")

// NewHandle fails: IPVS is a Linux facility.
func NewHandle() (Handle, error) { return nil, errNotLinux }

// NewLinks fails: the dummy interface is a Linux facility.
func NewLinks() (Links, error) { return nil, errNotLinux }

package config

import (
	"errors"
	"fmt"
	"slices"

	"k8s.io/klog/v2"
)

// Source is where berth read a setting.
type Source string

// The sources of the proxy mode, first the one that wins.
const (
	// SourceBerth is berth's own configuration file, proxy.mode.
	SourceBerth Source = "berth's configuration (proxy.mode)"
	// SourceFile is the KubeProxyConfiguration file berth's configuration
	// names (proxy.configFile), its mode.
	SourceFile Source = "berth's KubeProxyConfiguration file (proxy.configFile, mode)"
	// SourceConfigMap is the cluster's kube-system/kube-proxy ConfigMap,
	// its mode.
	SourceConfigMap Source = "the cluster's kube-system/kube-proxy ConfigMap (mode)"
	// SourceDefault: no source sets the mode.
	SourceDefault Source = "berth's default"
)

// DefaultMode is the mode when no source sets one.
const DefaultMode = ModeIPTables

// ErrModeUnavailable: berth's own configuration asks for a mode whose
// backend this berth does not have.
var ErrModeUnavailable = errors.New("proxy mode not available in this berth")

// ModeInputs are the mode each source sets ("" where it sets none) and the
// modes whose backends berth has.
type ModeInputs struct {
	// Berth, File and ConfigMap are the modes of SourceBerth, SourceFile
	// and SourceConfigMap.
	Berth, File, ConfigMap Mode
	// Available are the modes berth can run.
	Available []Mode
}

// ModeChoice is the mode berth runs and why.
type ModeChoice struct {
	// Mode is the mode to run.
	Mode Mode
	// Source is the source it came from.
	Source Source
	// Ignored are the other sources that set a different mode, with it.
	Ignored []SourcedMode
	// FallbackFrom is set when the ConfigMap asked for a mode berth cannot
	// run and Mode (DefaultMode, from SourceDefault) replaces it; a mode
	// of berth's own configuration that it cannot run is an error.
	FallbackFrom Mode
}

// SourcedMode is a mode and where it was read.
type SourcedMode struct {
	// Mode is the mode the source sets.
	Mode Mode
	// Source is the source.
	Source Source
}

// ChooseMode applies the precedence: berth's configuration, then berth's
// KubeProxyConfiguration file, then the cluster's ConfigMap, then
// DefaultMode. The sources that lose and disagree are kept in Ignored, for
// Log. A mode berth cannot run fails when berth's own configuration (file
// included) asks for it, and falls back to DefaultMode when only the
// ConfigMap does: that ConfigMap was written for kube-proxy, not for berth.
func ChooseMode(in ModeInputs) (ModeChoice, error) {
	sources := []SourcedMode{{in.Berth, SourceBerth}, {in.File, SourceFile}, {in.ConfigMap, SourceConfigMap}}
	c := ModeChoice{Mode: DefaultMode, Source: SourceDefault}
	won := -1
	for i, s := range sources {
		if s.Mode != "" {
			c.Mode, c.Source, won = s.Mode, s.Source, i
			break
		}
	}
	for i, s := range sources {
		if i != won && s.Mode != "" && s.Mode != c.Mode {
			c.Ignored = append(c.Ignored, s)
		}
	}
	if !slices.Contains([]Mode{ModeIPTables, ModeIPVS, ModeNFTables}, c.Mode) {
		return c, fmt.Errorf("mode %q of %s: want iptables, ipvs or nftables", c.Mode, c.Source)
	}
	if slices.Contains(in.Available, c.Mode) {
		return c, nil
	}
	if c.Source != SourceConfigMap {
		return c, fmt.Errorf("%w: %s asks for %q, berth has %v", ErrModeUnavailable, c.Source, c.Mode, in.Available)
	}
	c.FallbackFrom, c.Mode, c.Source = c.Mode, DefaultMode, SourceDefault
	return c, nil
}

// Log logs the choice: the mode and its source, each source that set
// another mode (a conflict, named with both sources), and a fallback with
// its reason.
func (c ModeChoice) Log(log klog.Logger) {
	for _, ig := range c.Ignored {
		log.Info("Conflicting proxy modes: the first source wins", "mode", c.Mode, "source", c.Source,
			"ignoredMode", ig.Mode, "ignoredSource", ig.Source, "precedence", "berth's configuration, proxy.configFile, the kube-proxy ConfigMap")
	}
	if c.FallbackFrom != "" {
		log.Info("Proxy mode not available in this berth: falling back", "asked", c.FallbackFrom, "askedBy", SourceConfigMap, "mode", c.Mode)
	}
	log.Info("Proxy mode", "mode", c.Mode, "source", c.Source)
}

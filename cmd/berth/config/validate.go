package config

import (
	"path/filepath"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// unixScheme is the only CRI endpoint scheme berth supports: containerd and
// CRI-O both listen on a unix socket on Linux.
const unixScheme = "unix://"

// Validate reports every problem with c at once, each with its field path,
// as a k8s.io/apimachinery aggregate of *field.Error; it returns nil when c
// is valid. An empty NodeName is valid: Load replaces it with the hostname.
func (c *Config) Validate() error {
	return c.validate().ToAggregate()
}

func (c *Config) validate() field.ErrorList {
	var errs field.ErrorList
	errs = append(errs, validateConstant(field.NewPath("apiVersion"), c.APIVersion, APIVersion)...)
	errs = append(errs, validateConstant(field.NewPath("kind"), c.Kind, Kind)...)
	if c.NodeName != "" {
		fldPath := field.NewPath("nodeName")
		for _, msg := range validation.IsDNS1123Subdomain(c.NodeName) {
			errs = append(errs, field.Invalid(fldPath, c.NodeName, msg))
		}
	}
	errs = append(errs, c.Kubelet.validate(field.NewPath("kubelet"))...)
	errs = append(errs, c.Proxy.validate(field.NewPath("proxy"))...)
	return errs
}

func (k *KubeletConfig) validate(fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	errs = append(errs, validateAbsPath(fldPath.Child("configFile"), k.ConfigFile)...)
	errs = append(errs, validateAbsPath(fldPath.Child("kubeadmFlagsFile"), k.KubeadmFlagsFile)...)
	errs = append(errs, validateAbsPath(fldPath.Child("bootstrapKubeconfig"), k.BootstrapKubeconfig)...)
	errs = append(errs, validateAbsPath(fldPath.Child("kubeconfig"), k.Kubeconfig)...)
	errs = append(errs, validateAbsPath(fldPath.Child("rootDir"), k.RootDir)...)
	if k.ContainerRuntimeEndpoint != "" {
		errs = append(errs, validateEndpoint(fldPath.Child("containerRuntimeEndpoint"), k.ContainerRuntimeEndpoint)...)
	}
	errs = append(errs, validateEnum(fldPath.Child("podNetwork"), k.PodNetwork, PodNetworkBuiltin, PodNetworkCNI)...)
	return errs
}

// validate checks the proxy settings even when the proxy is disabled, so a
// typo does not lie dormant until someone enables it.
func (p *ProxyConfig) validate(fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if p.Mode != "" {
		errs = append(errs, validateEnum(fldPath.Child("mode"), p.Mode, ProxyModeIPTables, ProxyModeIPVS, ProxyModeNFTables)...)
	}
	if p.ConfigFile != "" {
		errs = append(errs, validateAbsPath(fldPath.Child("configFile"), p.ConfigFile)...)
	}
	return errs
}

func validateConstant(fldPath *field.Path, value, want string) field.ErrorList {
	switch value {
	case want:
		return nil
	case "":
		return field.ErrorList{field.Required(fldPath, "must be "+want)}
	default:
		return field.ErrorList{field.NotSupported(fldPath, value, []string{want})}
	}
}

// validateAbsPath requires an absolute path: berth runs as a systemd service
// whose working directory nobody should have to think about.
func validateAbsPath(fldPath *field.Path, path string) field.ErrorList {
	switch {
	case path == "":
		return field.ErrorList{field.Required(fldPath, "must be an absolute path")}
	case !filepath.IsAbs(path):
		return field.ErrorList{field.Invalid(fldPath, path, "must be an absolute path")}
	default:
		return nil
	}
}

func validateEndpoint(fldPath *field.Path, endpoint string) field.ErrorList {
	const detail = "must be " + unixScheme + " followed by an absolute socket path, e.g. unix:///run/containerd/containerd.sock"
	socket, ok := strings.CutPrefix(endpoint, unixScheme)
	if !ok || !filepath.IsAbs(socket) {
		return field.ErrorList{field.Invalid(fldPath, endpoint, detail)}
	}
	return nil
}

func validateEnum[T ~string](fldPath *field.Path, value T, supported ...T) field.ErrorList {
	if slices.Contains(supported, value) {
		return nil
	}
	return field.ErrorList{field.NotSupported(fldPath, value, supported)}
}

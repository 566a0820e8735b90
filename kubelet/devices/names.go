package devices

import (
	"fmt"
	"path/filepath"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// IsExtendedResourceName tells whether name is an extended resource: a
// domain-prefixed name outside kubernetes.io, valid as a quota resource
// (requests.<name>). The kubelet accepts only these from device plugins.
func IsExtendedResourceName(name v1.ResourceName) bool {
	s := string(name)
	if !strings.Contains(s, "/") || strings.Contains(s, v1.ResourceDefaultNamespacePrefix) ||
		strings.HasPrefix(s, v1.DefaultResourceRequestsPrefix) {
		return false
	}
	return len(validation.IsQualifiedName(v1.DefaultResourceRequestsPrefix+s)) == 0
}

// checkVersions returns nil when one of versions is one berth speaks, in the
// kubelet's words otherwise.
func checkVersions(versions ...string) error {
	for _, v := range versions {
		for _, s := range pluginapi.SupportedVersions {
			if v == s {
				return nil
			}
		}
	}
	return fmt.Errorf("%w: requested API version %q is not supported by kubelet. Supported version is %q",
		ErrRegistration, strings.Join(versions, ","), pluginapi.SupportedVersions)
}

// checkResource returns nil when name is an extended resource name.
func checkResource(name string) error {
	if !IsExtendedResourceName(v1.ResourceName(name)) {
		return fmt.Errorf("%w: the ResourceName %q is invalid", ErrRegistration, name)
	}
	return nil
}

// endpointPath returns the plugin socket of a Register request: a file
// name in the plugin directory, which the request may not leave.
func endpointPath(dir, endpoint string) (string, error) {
	if endpoint == "" || endpoint != filepath.Base(endpoint) || endpoint == "." || endpoint == ".." {
		return "", fmt.Errorf("%w: endpoint %q is not a socket name in %s", ErrRegistration, endpoint, dir)
	}
	if endpoint == socketName {
		return "", fmt.Errorf("%w: endpoint %q is berth's own registration socket", ErrRegistration, endpoint)
	}
	return filepath.Join(dir, endpoint), nil
}

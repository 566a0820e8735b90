package podruntime

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/distribution/reference"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// dockerAuth is one registry's entry of a docker config file.
type dockerAuth struct {
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	Auth          string `json:"auth,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
	RegistryToken string `json:"registrytoken,omitempty"`
}

// registryCred is a credential and the registry location it is for.
type registryCred struct {
	key  string
	host string
	path string
	auth dockerAuth
}

// PullSecretCreds reads the pod's image pull secrets. Secrets that are
// missing or not docker configs are skipped, as by the kubelet (the pull may
// still work anonymously); the errors are returned for an event.
func PullSecretCreds(ctx context.Context, objects corev1client.SecretsGetter, pod *v1.Pod) ([]registryCred, []error) {
	var creds []registryCred
	var errs []error
	for _, ref := range pod.Spec.ImagePullSecrets {
		s, err := objects.Secrets(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			errs = append(errs, fmt.Errorf("image pull secret %q: %w", ref.Name, err))
			continue
		}
		c, err := parseDockerSecret(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("image pull secret %q: %w", ref.Name, err))
			continue
		}
		creds = append(creds, c...)
	}
	return creds, errs
}

// parseDockerSecret reads a kubernetes.io/dockerconfigjson or
// kubernetes.io/dockercfg secret.
func parseDockerSecret(s *v1.Secret) ([]registryCred, error) {
	var auths map[string]dockerAuth
	switch {
	case len(s.Data[v1.DockerConfigJsonKey]) > 0:
		var cfg struct {
			Auths map[string]dockerAuth `json:"auths"`
		}
		if err := json.Unmarshal(s.Data[v1.DockerConfigJsonKey], &cfg); err != nil {
			return nil, fmt.Errorf("parse %s: %w", v1.DockerConfigJsonKey, err)
		}
		auths = cfg.Auths
	case len(s.Data[v1.DockerConfigKey]) > 0:
		if err := json.Unmarshal(s.Data[v1.DockerConfigKey], &auths); err != nil {
			return nil, fmt.Errorf("parse %s: %w", v1.DockerConfigKey, err)
		}
	default:
		return nil, fmt.Errorf("secret of type %q holds no docker config", s.Type)
	}
	keys := make([]string, 0, len(auths))
	for k := range auths {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []registryCred
	for _, key := range keys {
		a := auths[key]
		host, p := registryKey(key)
		if a.Auth != "" && a.Username == "" && a.Password == "" {
			if raw, err := base64.StdEncoding.DecodeString(a.Auth); err == nil {
				a.Username, a.Password, _ = strings.Cut(string(raw), ":")
			}
		}
		out = append(out, registryCred{key: key, host: host, path: p, auth: a})
	}
	return out, nil
}

// registryKey normalizes a docker config key (a URL or host[/path]) to the
// registry host and path prefix it matches.
func registryKey(key string) (string, string) {
	k := strings.TrimPrefix(strings.TrimPrefix(key, "https://"), "http://")
	k = strings.TrimSuffix(k, "/")
	for _, v := range []string{"/v1", "/v2"} {
		k = strings.TrimSuffix(k, v)
	}
	host, p, _ := strings.Cut(k, "/")
	switch host {
	case "index.docker.io", "registry-1.docker.io":
		host = "docker.io"
	}
	return host, p
}

// ImageAuths returns the CRI credentials that match image, most specific
// first.
func ImageAuths(image string, creds []registryCred) []*runtimeapi.AuthConfig {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return nil
	}
	domain, repo := reference.Domain(named), reference.Path(named)
	var matched []registryCred
	for _, c := range creds {
		if ok, _ := path.Match(c.host, domain); !ok && c.host != domain {
			continue
		}
		if c.path != "" && repo != c.path && !strings.HasPrefix(repo, c.path+"/") {
			continue
		}
		matched = append(matched, c)
	}
	// The credential of the longest matching path comes first.
	sort.SliceStable(matched, func(i, j int) bool { return len(matched[i].path) > len(matched[j].path) })
	out := make([]*runtimeapi.AuthConfig, 0, len(matched))
	for _, c := range matched {
		out = append(out, &runtimeapi.AuthConfig{
			Username:      c.auth.Username,
			Password:      c.auth.Password,
			Auth:          c.auth.Auth,
			ServerAddress: domain,
			IdentityToken: c.auth.IdentityToken,
			RegistryToken: c.auth.RegistryToken,
		})
	}
	return out
}

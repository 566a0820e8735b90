package podruntime

import (
	"fmt"
	"maps"
	"path/filepath"
	"strings"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// maxHostnameLength is the kernel's limit of a hostname (and DNS label).
const maxHostnameLength = 63

// podHostname returns the pod's hostname and, when it has a subdomain, its
// fully qualified name (hostname.subdomain.namespace.svc.domain).
func podHostname(pod *v1.Pod, clusterDomain string) (string, string, error) {
	name := pod.Spec.Hostname
	if name == "" {
		name = pod.Name
	}
	if len(name) > maxHostnameLength {
		name = strings.TrimRight(name[:maxHostnameLength], "-.")
	}
	fqdn := ""
	if pod.Spec.Subdomain != "" && clusterDomain != "" {
		fqdn = fmt.Sprintf("%s.%s.%s.svc.%s", name, pod.Spec.Subdomain, pod.Namespace, clusterDomain)
	}
	if pod.Spec.SetHostnameAsFQDN != nil && *pod.Spec.SetHostnameAsFQDN && fqdn != "" {
		if len(fqdn) > maxHostnameLength+1 {
			return "", "", fmt.Errorf("failed to construct FQDN from pod hostname and cluster domain, FQDN %s is too long (%d characters is the max, %d characters requested)", fqdn, maxHostnameLength+1, len(fqdn))
		}
		return fqdn, fqdn, nil
	}
	return name, fqdn, nil
}

// PodLogDir is the pod's log directory: <logs>/<namespace>_<name>_<uid>.
func PodLogDir(logsDir string, pod *v1.Pod) string {
	return filepath.Join(logsDir, fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, pod.UID))
}

// podLabels are the labels of the pod's sandbox: the pod's own and the
// kubelet's identifying ones.
func podLabels(pod *v1.Pod) map[string]string {
	out := maps.Clone(pod.Labels)
	if out == nil {
		out = map[string]string{}
	}
	out[labelPodName] = pod.Name
	out[labelPodNamespace] = pod.Namespace
	out[labelPodUID] = string(pod.UID)
	return out
}

// portMappings returns the host ports of the pod's containers.
func portMappings(pod *v1.Pod) []*runtimeapi.PortMapping {
	var out []*runtimeapi.PortMapping
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.HostPort <= 0 {
				continue
			}
			out = append(out, &runtimeapi.PortMapping{
				Protocol:      toProtocol(p.Protocol),
				ContainerPort: p.ContainerPort,
				HostPort:      p.HostPort,
				HostIp:        p.HostIP,
			})
		}
	}
	return out
}

func toProtocol(p v1.Protocol) runtimeapi.Protocol {
	switch p {
	case v1.ProtocolUDP:
		return runtimeapi.Protocol_UDP
	case v1.ProtocolSCTP:
		return runtimeapi.Protocol_SCTP
	default:
		return runtimeapi.Protocol_TCP
	}
}

// namespaceOptions are the pod's Linux namespaces: the node's network, PID
// and IPC namespaces when asked for, the pod's own otherwise (a PID namespace
// per container unless the pod shares one).
func namespaceOptions(pod *v1.Pod) *runtimeapi.NamespaceOption {
	ns := &runtimeapi.NamespaceOption{
		Network: runtimeapi.NamespaceMode_POD,
		Pid:     runtimeapi.NamespaceMode_CONTAINER,
		Ipc:     runtimeapi.NamespaceMode_POD,
	}
	if pod.Spec.HostNetwork {
		ns.Network = runtimeapi.NamespaceMode_NODE
	}
	if pod.Spec.ShareProcessNamespace != nil && *pod.Spec.ShareProcessNamespace {
		ns.Pid = runtimeapi.NamespaceMode_POD
	}
	if pod.Spec.HostPID {
		ns.Pid = runtimeapi.NamespaceMode_NODE
	}
	if pod.Spec.HostIPC {
		ns.Ipc = runtimeapi.NamespaceMode_NODE
	}
	return ns
}

// SandboxParams are the node's settings a sandbox config needs.
type SandboxParams struct {
	RootDir       string
	LogsDir       string
	CgroupRoot    string
	CgroupDriver  string
	CgroupsPerQOS bool
	ClusterDomain string
	DNS           *runtimeapi.DNSConfig
}

// SandboxConfig builds the CRI configuration of the pod's sandbox.
func SandboxConfig(pod *v1.Pod, attempt uint32, p SandboxParams) (*runtimeapi.PodSandboxConfig, error) {
	hostname, _, err := podHostname(pod, p.ClusterDomain)
	if err != nil {
		return nil, err
	}
	if pod.Spec.HostNetwork {
		// The node's hostname stays.
		hostname = ""
	}
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{
			Name: pod.Name, Namespace: pod.Namespace, Uid: string(pod.UID), Attempt: attempt,
		},
		Hostname:     hostname,
		LogDirectory: PodLogDir(p.LogsDir, pod),
		DnsConfig:    p.DNS,
		PortMappings: portMappings(pod),
		Labels:       podLabels(pod),
		Annotations:  maps.Clone(pod.Annotations),
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent:    CgroupParent(p.CgroupRoot, p.CgroupDriver, p.CgroupsPerQOS, pod),
			SecurityContext: sandboxSecurity(pod, p.RootDir),
			Sysctls:         sysctls(pod),
		},
	}
	return cfg, nil
}

func sysctls(pod *v1.Pod) map[string]string {
	sc := pod.Spec.SecurityContext
	if sc == nil || len(sc.Sysctls) == 0 {
		return nil
	}
	out := map[string]string{}
	for _, s := range sc.Sysctls {
		out[s.Name] = s.Value
	}
	return out
}

// sandboxSecurity is the sandbox's security context: the pod's namespaces,
// user and groups, seccomp profile, and privileged when a container is.
func sandboxSecurity(pod *v1.Pod, rootDir string) *runtimeapi.LinuxSandboxSecurityContext {
	out := &runtimeapi.LinuxSandboxSecurityContext{
		NamespaceOptions: namespaceOptions(pod),
		Privileged:       anyPrivileged(pod),
	}
	sc := pod.Spec.SecurityContext
	if sc == nil {
		out.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}
		return out
	}
	if sc.RunAsUser != nil {
		out.RunAsUser = &runtimeapi.Int64Value{Value: *sc.RunAsUser}
	}
	if sc.RunAsGroup != nil {
		out.RunAsGroup = &runtimeapi.Int64Value{Value: *sc.RunAsGroup}
	}
	out.SupplementalGroups = supplementalGroups(sc)
	out.Seccomp = seccompProfile(rootDir, sc.SeccompProfile, nil)
	if sc.SELinuxOptions != nil {
		out.SelinuxOptions = selinux(sc.SELinuxOptions)
	}
	return out
}

func supplementalGroups(sc *v1.PodSecurityContext) []int64 {
	if sc == nil {
		return nil
	}
	out := append([]int64(nil), sc.SupplementalGroups...)
	if sc.FSGroup != nil {
		out = append(out, *sc.FSGroup)
	}
	return out
}

func anyPrivileged(pod *v1.Pod) bool {
	for _, list := range [][]v1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range list {
			if c.SecurityContext != nil && c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged {
				return true
			}
		}
	}
	return false
}

// seccompProfile maps a container's profile, or else the pod's, to CRI;
// without either the container runs unconfined, as under the kubelet. Local
// profiles are files below <root>/seccomp.
func seccompProfile(root string, pod, container *v1.SeccompProfile) *runtimeapi.SecurityProfile {
	p := container
	if p == nil {
		p = pod
	}
	if p == nil {
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}
	}
	switch p.Type {
	case v1.SeccompProfileTypeRuntimeDefault:
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
	case v1.SeccompProfileTypeLocalhost:
		ref := ""
		if p.LocalhostProfile != nil {
			ref = *p.LocalhostProfile
		}
		return &runtimeapi.SecurityProfile{
			ProfileType:  runtimeapi.SecurityProfile_Localhost,
			LocalhostRef: filepath.Join(root, "seccomp", ref),
		}
	default:
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}
	}
}

func selinux(o *v1.SELinuxOptions) *runtimeapi.SELinuxOption {
	return &runtimeapi.SELinuxOption{User: o.User, Role: o.Role, Type: o.Type, Level: o.Level}
}

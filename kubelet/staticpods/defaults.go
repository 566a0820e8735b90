package staticpods

import (
	"github.com/distribution/reference"
	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

// API server defaults a static pod gets, since no API server defaults it.
const (
	defaultGracePeriod        = 30
	defaultSchedulerName      = "default-scheduler"
	defaultTerminationPath    = "/dev/termination-log"
	defaultProbeTimeout       = 1
	defaultProbePeriod        = 10
	defaultProbeSuccess       = 1
	defaultProbeFailure       = 3
	defaultHTTPGetPath        = "/"
	defaultFieldRefAPIVersion = "v1"
)

// setDefaults fills in what the API server's defaulting would for a pod
// created through it, so that a static pod runs exactly like its mirror pod
// reads and hashes the same whatever the manifest leaves out.
func setDefaults(pod *v1.Pod) {
	spec := &pod.Spec
	if spec.RestartPolicy == "" {
		spec.RestartPolicy = v1.RestartPolicyAlways
	}
	if spec.DNSPolicy == "" {
		spec.DNSPolicy = v1.DNSClusterFirst
	}
	if spec.TerminationGracePeriodSeconds == nil {
		spec.TerminationGracePeriodSeconds = ptr.To[int64](defaultGracePeriod)
	}
	if spec.SchedulerName == "" {
		spec.SchedulerName = defaultSchedulerName
	}
	if spec.SecurityContext == nil {
		spec.SecurityContext = &v1.PodSecurityContext{}
	}
	if spec.EnableServiceLinks == nil {
		spec.EnableServiceLinks = ptr.To(true)
	}
	for i := range spec.Volumes {
		if hp := spec.Volumes[i].HostPath; hp != nil && hp.Type == nil {
			hp.Type = ptr.To(v1.HostPathUnset)
		}
	}
	for i := range spec.InitContainers {
		defaultContainer(&spec.InitContainers[i], spec.HostNetwork)
	}
	for i := range spec.Containers {
		defaultContainer(&spec.Containers[i], spec.HostNetwork)
	}
}

func defaultContainer(c *v1.Container, hostNetwork bool) {
	if c.ImagePullPolicy == "" {
		c.ImagePullPolicy = defaultPullPolicy(c.Image)
	}
	if c.TerminationMessagePath == "" {
		c.TerminationMessagePath = defaultTerminationPath
	}
	if c.TerminationMessagePolicy == "" {
		c.TerminationMessagePolicy = v1.TerminationMessageReadFile
	}
	for i := range c.Ports {
		p := &c.Ports[i]
		if p.Protocol == "" {
			p.Protocol = v1.ProtocolTCP
		}
		if hostNetwork && p.HostPort == 0 {
			p.HostPort = p.ContainerPort
		}
	}
	// Requests default to limits.
	for name, limit := range c.Resources.Limits {
		if _, ok := c.Resources.Requests[name]; ok {
			continue
		}
		if c.Resources.Requests == nil {
			c.Resources.Requests = v1.ResourceList{}
		}
		c.Resources.Requests[name] = limit.DeepCopy()
	}
	for i := range c.Env {
		if src := c.Env[i].ValueFrom; src != nil && src.FieldRef != nil && src.FieldRef.APIVersion == "" {
			src.FieldRef.APIVersion = defaultFieldRefAPIVersion
		}
	}
	for _, p := range []*v1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
		defaultProbe(p)
	}
}

// defaultPullPolicy is Always for an image tagged latest or not tagged at
// all, IfNotPresent otherwise.
func defaultPullPolicy(image string) v1.PullPolicy {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		// Validation reports the image; the policy does not matter.
		return v1.PullIfNotPresent
	}
	if tagged, ok := named.(reference.Tagged); ok {
		if tagged.Tag() == "latest" {
			return v1.PullAlways
		}
		return v1.PullIfNotPresent
	}
	if _, ok := named.(reference.Digested); ok {
		return v1.PullIfNotPresent
	}
	return v1.PullAlways
}

func defaultProbe(p *v1.Probe) {
	if p == nil {
		return
	}
	if p.TimeoutSeconds == 0 {
		p.TimeoutSeconds = defaultProbeTimeout
	}
	if p.PeriodSeconds == 0 {
		p.PeriodSeconds = defaultProbePeriod
	}
	if p.SuccessThreshold == 0 {
		p.SuccessThreshold = defaultProbeSuccess
	}
	if p.FailureThreshold == 0 {
		p.FailureThreshold = defaultProbeFailure
	}
	if g := p.HTTPGet; g != nil {
		if g.Path == "" {
			g.Path = defaultHTTPGetPath
		}
		if g.Scheme == "" {
			g.Scheme = v1.URISchemeHTTP
		}
	}
}

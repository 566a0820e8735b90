package podruntime

import (
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ContainerHash sums up what of a container's spec may change while the pod
// lives and needs a new container: its name and image. Restarted berths
// compare it to the running container's to decide whether to replace it, so
// it must stay stable across berth versions.
func ContainerHash(c *v1.Container) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(c.Name + "\x00" + c.Image))
	return strconv.FormatUint(uint64(h.Sum32()), 16)
}

// ContainerParams are the inputs of one container's CRI configuration.
type ContainerParams struct {
	Pod          *v1.Pod
	Container    *v1.Container
	RestartCount int32
	ImageRef     string
	Env          *EnvVars
	// Mounts are the host paths of the pod's volumes by name: a
	// directory (or file) to bind for volumeMounts, a block device file
	// for volumeDevices.
	Mounts map[string]string
	// TermFile is the host file behind the termination message path.
	TermFile string
	// HostsFile is the pod's managed /etc/hosts ("" for none).
	HostsFile string
	// PIDTarget is the runtime ID of the container whose process namespace
	// an ephemeral container joins ("" for none).
	PIDTarget string
}

// ContainerConfig builds the CRI configuration of a container.
func ContainerConfig(p ContainerParams, res ResourceParams, rootDir string) (*runtimeapi.ContainerConfig, error) {
	pod, c := p.Pod, p.Container
	mounts, err := containerMounts(p)
	if err != nil {
		return nil, err
	}
	devices, err := containerDevices(p)
	if err != nil {
		return nil, err
	}
	cfg := &runtimeapi.ContainerConfig{
		Metadata:   &runtimeapi.ContainerMetadata{Name: c.Name, Attempt: uint32(p.RestartCount)},
		Image:      &runtimeapi.ImageSpec{Image: p.ImageRef, UserSpecifiedImage: c.Image},
		WorkingDir: c.WorkingDir,
		Mounts:     mounts,
		Devices:    devices,
		Labels: map[string]string{
			labelPodName:       pod.Name,
			labelPodNamespace:  pod.Namespace,
			labelPodUID:        string(pod.UID),
			labelContainerName: c.Name,
		},
		Annotations: map[string]string{
			annotationHash:       ContainerHash(c),
			annotationRestarts:   strconv.Itoa(int(p.RestartCount)),
			annotationTermPath:   c.TerminationMessagePath,
			annotationTermPolicy: string(c.TerminationMessagePolicy),
			annotationGrace:      strconv.FormatInt(SpecGracePeriod(pod), 10),
			annotationTermFile:   p.TermFile,
		},
		LogPath:   filepath.Join(c.Name, strconv.Itoa(int(p.RestartCount))+".log"),
		Stdin:     c.Stdin,
		StdinOnce: c.StdinOnce,
		Tty:       c.TTY,
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources:       ContainerResources(pod, c, res),
			SecurityContext: containerSecurity(pod, c, rootDir),
		},
	}
	joinPIDNamespace(cfg.Linux.SecurityContext.NamespaceOptions, p.PIDTarget)
	for _, name := range p.Env.names {
		cfg.Envs = append(cfg.Envs, &runtimeapi.KeyValue{Key: name, Value: []byte(p.Env.values[name])})
	}
	for _, s := range c.Command {
		cfg.Command = append(cfg.Command, expand(s, p.Env.Lookup))
	}
	for _, s := range c.Args {
		cfg.Args = append(cfg.Args, expand(s, p.Env.Lookup))
	}
	return cfg, nil
}

// containerMounts binds the container's volume mounts, its termination
// message file and the pod's hosts file.
func containerMounts(p ContainerParams) ([]*runtimeapi.Mount, error) {
	c := p.Container
	var out []*runtimeapi.Mount
	mountsHosts := false
	for _, vm := range c.VolumeMounts {
		host, ok := p.Mounts[vm.Name]
		if !ok {
			return nil, fmt.Errorf("%w: cannot find volume %q to mount into container %q", ErrConfig, vm.Name, c.Name)
		}
		src := podVolume(p.Pod, vm.Name)
		if err := checkNotBlock(src, vm.Name, host, c); err != nil {
			return nil, err
		}
		sub := vm.SubPath
		if vm.SubPathExpr != "" {
			sub = expand(vm.SubPathExpr, p.Env.Lookup)
		}
		if sub != "" {
			joined, err := subPath(host, sub)
			if err != nil {
				return nil, fmt.Errorf("%w: volume %q: %w", ErrConfig, vm.Name, err)
			}
			host = joined
		}
		mountsHosts = mountsHosts || vm.MountPath == "/etc/hosts"
		out = append(out, &runtimeapi.Mount{
			ContainerPath: vm.MountPath,
			HostPath:      host,
			Readonly:      vm.ReadOnly || readOnlyVolume(src),
			Propagation:   propagation(vm.MountPropagation),
		})
	}
	if p.HostsFile != "" && !mountsHosts {
		out = append(out, &runtimeapi.Mount{ContainerPath: "/etc/hosts", HostPath: p.HostsFile})
	}
	if p.TermFile != "" && c.TerminationMessagePath != "" {
		out = append(out, &runtimeapi.Mount{ContainerPath: c.TerminationMessagePath, HostPath: p.TermFile})
	}
	return out, nil
}

// readOnlyVolume reports whether the pod volume src is read-only for every
// container, whatever their volumeMounts say: a claim or a CSI inline
// volume marked readOnly, as the kubelet enforces it.
func readOnlyVolume(src *v1.VolumeSource) bool {
	switch {
	case src == nil:
		return false
	case src.PersistentVolumeClaim != nil:
		return src.PersistentVolumeClaim.ReadOnly
	case src.CSI != nil:
		return src.CSI.ReadOnly != nil && *src.CSI.ReadOnly
	}
	return false
}

// checkNotBlock refuses to mount a claim's block volume as a file system.
// A hostPath may name a device file, which is bind-mounted as it is.
func checkNotBlock(src *v1.VolumeSource, name, host string, c *v1.Container) error {
	if src == nil || (src.PersistentVolumeClaim == nil && src.Ephemeral == nil) {
		return nil
	}
	if info, err := os.Stat(host); err == nil && info.Mode().Type() == os.ModeDevice {
		return fmt.Errorf("%w: volume %q is a block volume: container %q must take it in volumeDevices, not volumeMounts", ErrConfig, name, c.Name)
	}
	return nil
}

// podVolume returns the source of the pod's volume name, nil when there is
// none.
func podVolume(pod *v1.Pod, name string) *v1.VolumeSource {
	for i := range pod.Spec.Volumes {
		if pod.Spec.Volumes[i].Name == name {
			return &pod.Spec.Volumes[i].VolumeSource
		}
	}
	return nil
}

// containerDevices gives the container the block volumes it asks for in
// volumeDevices, read, write and mknod allowed, as the kubelet does. The
// volume manager refuses a file system volume there and a block volume in
// volumeMounts; the device check here names the container when a volume
// still is not what the runtime can pass as a device.
func containerDevices(p ContainerParams) ([]*runtimeapi.Device, error) {
	c := p.Container
	var out []*runtimeapi.Device
	for _, vd := range c.VolumeDevices {
		host, ok := p.Mounts[vd.Name]
		if !ok {
			return nil, fmt.Errorf("%w: cannot find volume %q to map into container %q", ErrConfig, vd.Name, c.Name)
		}
		info, err := os.Stat(host)
		if err != nil {
			return nil, fmt.Errorf("%w: block volume %q of container %q: %w", ErrConfig, vd.Name, c.Name, err)
		}
		if info.Mode().Type() != os.ModeDevice {
			return nil, fmt.Errorf("%w: volume %q in volumeDevices of container %q is not a block device: %s is %v", ErrConfig, vd.Name, c.Name, host, info.Mode().Type())
		}
		out = append(out, &runtimeapi.Device{ContainerPath: vd.DevicePath, HostPath: host, Permissions: "mrw"})
	}
	return out, nil
}

// subPath joins a volume's host path and a subPath that must stay inside
// it, creating the directory when it is missing (as the kubelet does).
func subPath(host, sub string) (string, error) {
	if filepath.IsAbs(sub) {
		return "", fmt.Errorf("subPath %q must be relative", sub)
	}
	for _, part := range strings.Split(sub, "/") {
		if part == ".." {
			return "", fmt.Errorf("subPath %q must not contain '..'", sub)
		}
	}
	full := filepath.Join(host, sub)
	if _, err := os.Lstat(full); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(full, 0o750); err != nil {
			return "", fmt.Errorf("create subPath %q: %w", sub, err)
		}
	}
	return full, nil
}

func propagation(p *v1.MountPropagationMode) runtimeapi.MountPropagation {
	if p == nil {
		return runtimeapi.MountPropagation_PROPAGATION_PRIVATE
	}
	switch *p {
	case v1.MountPropagationHostToContainer:
		return runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER
	case v1.MountPropagationBidirectional:
		return runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL
	default:
		return runtimeapi.MountPropagation_PROPAGATION_PRIVATE
	}
}

// podDir is the pod's directory below the kubelet root.
func podDir(root string, pod *v1.Pod) string {
	return filepath.Join(root, "pods", string(pod.UID))
}

// TermFile makes the empty host file behind a container's termination
// message path, writable by any user the container runs as.
func TermFile(root string, pod *v1.Pod, c *v1.Container, restartCount int32) (string, error) {
	if c.TerminationMessagePath == "" {
		return "", nil
	}
	dir := filepath.Join(podDir(root, pod), "containers", c.Name)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", fmt.Errorf("create termination message directory: %w", err)
	}
	path := filepath.Join(dir, strconv.Itoa(int(restartCount)))
	if err := os.WriteFile(path, nil, 0o666); err != nil {
		return "", fmt.Errorf("create termination message file: %w", err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		return "", fmt.Errorf("create termination message file: %w", err)
	}
	return path, nil
}

// HostsFile writes the pod's /etc/hosts: localhost entries, the pod's own
// name on its IPs, and its host aliases. Host network pods keep the node's.
func HostsFile(root string, pod *v1.Pod, podIPs []string, clusterDomain string) (string, error) {
	if pod.Spec.HostNetwork || len(podIPs) == 0 {
		return "", nil
	}
	hostname, fqdn, err := podHostname(pod, clusterDomain)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("# Kubernetes-managed hosts file.\n")
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	b.WriteString("fe00::\tip6-localnet\nfe00::\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n")
	names := hostname
	if fqdn != "" && fqdn != hostname {
		names = fqdn + "\t" + hostname
	}
	for _, ip := range podIPs {
		fmt.Fprintf(&b, "%s\t%s\n", ip, names)
	}
	if len(pod.Spec.HostAliases) > 0 {
		b.WriteString("\n# Entries added by HostAliases.\n")
		for _, a := range pod.Spec.HostAliases {
			fmt.Fprintf(&b, "%s\t%s\n", a.IP, strings.Join(a.Hostnames, "\t"))
		}
	}
	dir := podDir(root, pod)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", fmt.Errorf("create pod directory: %w", err)
	}
	path := filepath.Join(dir, "etc-hosts")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return "", fmt.Errorf("write hosts file: %w", err)
	}
	return path, nil
}

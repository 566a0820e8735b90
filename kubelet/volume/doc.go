// Package volume sets up the volumes of the node's pods: it makes each
// volume of a pod available on the host and tells the pod workers which host
// path to bind-mount into the pod's containers.
//
// Volumes live where the kubelet keeps them,
// <root>/pods/<pod uid>/volumes/<plugin>/<volume name>, with the kubelet's
// plugin directory names, so that tools that know the kubelet's layout keep
// working. Supported sources are emptyDir (on disk or tmpfs), configMap,
// secret, downwardAPI, projected (serviceAccountToken, configMap, secret,
// downwardAPI) and hostPath; any other source is reported as unsupported.
//
// API data (configMap, secret, downwardAPI, projected) is published with
// package atomicwriter, so containers see whole versions only. Secret,
// downwardAPI and projected volumes sit on a tmpfs so that credentials never
// reach the disk. The Manager remembers when each service account token it
// wrote should be renewed; calling Setup again renews due tokens.
package volume

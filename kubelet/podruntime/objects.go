package podruntime

import (
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
)

// Objects reads the ConfigMaps and Secrets that a pod's containers refer
// to (environment variables, image pull secrets). It is the part of the
// API client the runtime side needs: the pod controller passes its
// client's CoreV1(), tests a fake one.
type Objects interface {
	corev1client.ConfigMapsGetter
	corev1client.SecretsGetter
}

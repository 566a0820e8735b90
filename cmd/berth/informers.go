package main

import (
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
)

// lastAppliedAnnotation is what `kubectl apply` leaves on an object: a copy
// of the whole object as applied.
const lastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration"

// newClusterInformers returns the informer factory of the cluster-wide
// objects berth watches (Nodes, Services, EndpointSlices), shared by the
// pod network, the pod manager and the service proxy so that each object is
// held once. Its caches keep only what berth reads: at 10,000 Services,
// their managedFields and kubectl's copies would be most of berth's memory.
func newClusterInformers(client kubernetes.Interface) informers.SharedInformerFactory {
	return informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTransform(trimForCache))
}

// trimForCache drops from an object what no part of berth reads: its
// managedFields, kubectl's last-applied copy, a Node's image list, and an
// EndpointSlice's references to the endpoints' pods.
func trimForCache(obj any) (any, error) {
	if m, err := meta.Accessor(obj); err == nil {
		m.SetManagedFields(nil)
		if _, ok := m.GetAnnotations()[lastAppliedAnnotation]; ok {
			a := make(map[string]string, len(m.GetAnnotations()))
			for k, v := range m.GetAnnotations() {
				if k != lastAppliedAnnotation {
					a[k] = v
				}
			}
			m.SetAnnotations(a)
		}
	}
	switch o := obj.(type) {
	case *v1.Node:
		o.Status.Images = nil
	case *discovery.EndpointSlice:
		for i := range o.Endpoints {
			o.Endpoints[i].TargetRef = nil
			o.Endpoints[i].DeprecatedTopology = nil
		}
	}
	return obj, nil
}

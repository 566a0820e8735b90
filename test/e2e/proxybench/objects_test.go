package proxybench

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sync/errgroup"
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

const (
	// endpointsPerService is how many endpoints each EndpointSlice lists.
	endpointsPerService = 5
	// apiWorkers is how many goroutines create or delete objects at once.
	apiWorkers = 16
	// managedBy marks the benchmark's EndpointSlices as nobody else's:
	// the EndpointSlice controller leaves them alone.
	managedBy = "proxybench.berth"
	// servicePort and targetPort are every Service's port and its
	// endpoints' port.
	servicePort = 80
	targetPort  = 8080
	// portName names the one port of each Service.
	portName = "http"
)

// serviceName names the i-th Service of a size.
func serviceName(i int) string { return fmt.Sprintf("svc-%05d", i) }

// podIP is the made-up address of endpoint j of Service i: 10.244.x.y,
// unique up to 50,000 endpoints, in the bed's pod CIDR. Nothing is ever
// sent to it.
func podIP(i, j int) netip.Addr {
	k := i*endpointsPerService + j
	return netip.AddrFrom4([4]byte{10, 244, byte(k / 250), byte(k%250 + 1)})
}

// flipIP is the address the f-th endpoint flip moves an endpoint to: above
// every podIP, still in the pod CIDR.
func flipIP(f int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 244, byte(250 + f/250), byte(f%250 + 1)})
}

// newService is the i-th Service: a cluster IP, one TCP port, no selector
// and no node port.
func newService(ns string, i int) *v1.Service {
	return &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: serviceName(i)},
		Spec: v1.ServiceSpec{
			Type: v1.ServiceTypeClusterIP,
			Ports: []v1.ServicePort{{
				Name: portName, Protocol: v1.ProtocolTCP, Port: servicePort, TargetPort: intstr.FromInt32(targetPort),
			}},
		},
	}
}

// newEndpointSlice is the i-th Service's EndpointSlice: five ready
// endpoints on no node.
func newEndpointSlice(ns string, i int) *discovery.EndpointSlice {
	s := &discovery.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns,
			Name:      serviceName(i) + "-bench",
			Labels: map[string]string{
				discovery.LabelServiceName: serviceName(i),
				discovery.LabelManagedBy:   managedBy,
			},
		},
		AddressType: discovery.AddressTypeIPv4,
		Ports: []discovery.EndpointPort{{
			Name: ptr.To(portName), Protocol: ptr.To(v1.ProtocolTCP), Port: ptr.To[int32](targetPort),
		}},
	}
	for j := range endpointsPerService {
		s.Endpoints = append(s.Endpoints, discovery.Endpoint{
			Addresses:  []string{podIP(i, j).String()},
			Conditions: discovery.EndpointConditions{Ready: ptr.To(true)},
		})
	}
	return s
}

// flipped returns a copy of slice with its first endpoint moved to ip and
// the trigger-time annotation set, so that berth's
// network_programming_duration metric times the change from at.
func flipped(slice *discovery.EndpointSlice, ip netip.Addr, at time.Time) *discovery.EndpointSlice {
	out := slice.DeepCopy()
	out.Endpoints[0].Addresses = []string{ip.String()}
	if out.Annotations == nil {
		out.Annotations = map[string]string{}
	}
	out.Annotations[v1.EndpointsLastChangeTriggerTime] = at.UTC().Format(time.RFC3339Nano)
	return out
}

// createObjects creates namespace ns with n Services and their
// EndpointSlices, apiWorkers at a time, and returns when the last Create
// call returned.
func createObjects(ctx context.Context, client kubernetes.Interface, ns string, n int) (time.Time, error) {
	if _, err := client.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return time.Time{}, fmt.Errorf("create namespace %s: %w", ns, err)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(apiWorkers)
	for i := range n {
		g.Go(func() error {
			if _, err := client.CoreV1().Services(ns).Create(gctx, newService(ns, i), metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("create service %s/%s: %w", ns, serviceName(i), err)
			}
			if _, err := client.DiscoveryV1().EndpointSlices(ns).Create(gctx, newEndpointSlice(ns, i), metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("create endpointslice of %s/%s: %w", ns, serviceName(i), err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return time.Time{}, err
	}
	return time.Now(), nil
}

// deleteObjects deletes namespace ns and everything in it, and waits until
// the namespace is gone. The Services are deleted here, apiWorkers at a
// time: the namespace controller would delete them one by one at its own
// rate limit.
func deleteObjects(ctx context.Context, client kubernetes.Interface, ns string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := client.DiscoveryV1().EndpointSlices(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete endpointslices of %s: %w", ns, err)
	}
	list, err := client.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list services of %s: %w", ns, err)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(apiWorkers)
	for _, svc := range list.Items {
		g.Go(func() error {
			err := client.CoreV1().Services(ns).Delete(gctx, svc.Name, metav1.DeleteOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("delete service %s/%s: %w", ns, svc.Name, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	err = client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete namespace %s: %w", ns, err)
	}
	return poll(ctx, time.Second, func() (bool, error) {
		_, err := client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		if err != nil {
			return false, fmt.Errorf("namespace %s: %w", ns, err)
		}
		return false, nil
	})
}

// errTimeout is what poll returns when its context ends first.
var errTimeout = errors.New("timed out")

// poll calls check every interval until it reports done, fails, or ctx
// ends.
func poll(ctx context.Context, interval time.Duration, check func() (bool, error)) error {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		done, err := check()
		if err != nil || done {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", errTimeout, ctx.Err())
		case <-ticker.C:
		}
	}
}

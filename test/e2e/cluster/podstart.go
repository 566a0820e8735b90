package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
)

// StartAndDelete creates pod in ns and returns the time until it is Ready
// as seen by a watch, then deletes it and waits until it is gone (its
// volumes torn down, so that the next pod may use the same claim). It is
// the pod start measure of the benchmarks.
func StartAndDelete(t testing.TB, client kubernetes.Interface, ns string, pod *v1.Pod) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	w, err := client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", pod.Name).String()})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	start := time.Now()
	if _, err := client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var took time.Duration
	for ev := range w.ResultChan() {
		if p, ok := ev.Object.(*v1.Pod); ok && PodReady(p) {
			took = time.Since(start)
			break
		}
	}
	if took == 0 {
		t.Fatalf("pod %s not ready within 2 minutes", pod.Name)
	}
	if err := client.CoreV1().Pods(ns).Delete(t.Context(), pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	Poll(t, 2*time.Minute, "pod "+pod.Name+" gone", func() (bool, string) {
		_, err := client.CoreV1().Pods(ns).Get(t.Context(), pod.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	return took
}

package main

import (
	"context"
	_ "embed"
	"fmt"
	"io"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// rbacManifest binds the nodes to kube-proxy's ClusterRole.
//
//go:embed rbac.yaml
var rbacManifest string

const rbacSynopsis = `Usage: berth rbac

Print the RBAC binding berth needs once per cluster, to apply it:

  berth rbac | kubectl apply -f -
`

// cmdRBAC implements "berth rbac".
func cmdRBAC(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		if args[0] == "-h" || args[0] == "--help" {
			fmt.Fprint(stdout, rbacSynopsis)
			return exitOK
		}
		return usageError(stderr, "berth rbac", "takes no arguments")
	}
	fmt.Fprint(stdout, rbacManifest)
	return exitOK
}

// checkClusterReads tells, with a clear error, whether the node may watch
// what the pod network and the proxy need cluster-wide.
func checkClusterReads(ctx context.Context, client kubernetes.Interface) error {
	for _, res := range []authorizationv1.ResourceAttributes{
		{Verb: "list", Resource: "nodes"},
		{Verb: "watch", Resource: "nodes"},
	} {
		review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &res}}
		got, err := client.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("check permissions: %w", err)
		}
		if !got.Status.Allowed {
			return fmt.Errorf("this node may not %s %s cluster-wide (%s): apply berth's RBAC binding once per cluster with `berth rbac | kubectl apply -f -`",
				res.Verb, res.Resource, got.Status.Reason)
		}
	}
	return nil
}

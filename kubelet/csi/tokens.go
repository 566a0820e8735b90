package csi

import (
	"context"
	"encoding/json"
	"fmt"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// tokensKey is the volume context (or secrets) key of the pod's service
// account tokens the CSIDriver asks for, as the kubelet names it.
const tokensKey = "csi.storage.k8s.io/serviceAccount.tokens"

// tokens requests a token of the pod's service account for each of the
// CSIDriver's tokenRequests, bound to the pod, and returns them as the
// kubelet passes them: a JSON object from audience to the TokenRequest
// status. Nil when the driver asks for none.
func (m *Manager) tokens(ctx context.Context, r *request) (map[string]string, error) {
	if len(r.tokenRequests) == 0 {
		return nil, nil
	}
	pod := r.pod
	out := map[string]authenticationv1.TokenRequestStatus{}
	for _, tr := range r.tokenRequests {
		audiences := []string{}
		if tr.Audience != "" {
			audiences = []string{tr.Audience}
		}
		req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
			Audiences:         audiences,
			ExpirationSeconds: tr.ExpirationSeconds,
			BoundObjectRef:    &authenticationv1.BoundObjectReference{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID},
		}}
		resp, err := m.cfg.Client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, pod.Spec.ServiceAccountName, req, metav1.CreateOptions{})
		if err != nil {
			return nil, fmt.Errorf("token of service account %s/%s for audience %q: %w", pod.Namespace, pod.Spec.ServiceAccountName, tr.Audience, err)
		}
		out[tr.Audience] = resp.Status
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	return map[string]string{tokensKey: string(b)}, nil
}

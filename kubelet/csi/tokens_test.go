package csi

import (
	"encoding/json"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"
)

func TestTokenRequestsAndRepublish(t *testing.T) {
	obj := noAttach()
	obj.Spec.TokenRequests = []storagev1.TokenRequest{{Audience: "vault", ExpirationSeconds: ptr.To[int64](600)}}
	obj.Spec.RequiresRepublish = ptr.To(true)
	b := newBed(t, obj, stageCaps...)
	var asked []*authenticationv1.TokenRequest
	b.client.PrependReactor("create", "serviceaccounts", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "token" {
			return false, nil, nil
		}
		req := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenRequest)
		asked = append(asked, req)
		out := req.DeepCopy()
		out.Status.Token = "token-for-" + req.Spec.BoundObjectRef.Name
		return true, out, nil
	})
	pod, vol := testPod("uid-a"), testPV("vol-1")
	for range 2 {
		if _, err := b.m.SetUp(b.ctx, pod, vol); err != nil {
			t.Fatal(err)
		}
	}
	if len(asked) != 2 {
		t.Fatalf("token requests = %d, want one per SetUp (requiresRepublish)", len(asked))
	}
	req := asked[0]
	if len(req.Spec.Audiences) != 1 || req.Spec.Audiences[0] != "vault" || *req.Spec.ExpirationSeconds != 600 ||
		req.Spec.BoundObjectRef.Kind != "Pod" || req.Spec.BoundObjectRef.UID != pod.UID {
		t.Errorf("token request %+v", req.Spec)
	}
	pub := b.drv.last(t, "NodePublishVolume")
	var tokens map[string]authenticationv1.TokenRequestStatus
	if err := json.Unmarshal([]byte(pub.context[tokensKey]), &tokens); err != nil {
		t.Fatalf("volume context %s = %q: %v", tokensKey, pub.context[tokensKey], err)
	}
	if tokens["vault"].Token != "token-for-pod-uid-a" {
		t.Errorf("tokens %+v", tokens)
	}
	if got := b.drv.methods(); len(got) != 3 || got[0] != "NodeStageVolume" {
		t.Errorf("calls %v, want one stage and two publishes", got)
	}
}

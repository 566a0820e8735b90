// Package testing holds the CRI runtime fake of berth's tests: upstream's
// FakeRuntimeService (k8s.io/cri-api/pkg/apis/testing, the fake kubelet's
// own tests use) with sandboxes and containers added as the kubelet labels
// them, and the few answers upstream's fake does not give: the runtime's
// NotFound status, a log reopened by a hook, streaming URLs, and lists in
// a fixed order. Import it as critesting.
package testing

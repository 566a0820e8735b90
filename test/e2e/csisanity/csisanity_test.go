package csisanity

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// sanityTimeout bounds the csi-sanity run (about a second here).
const sanityTimeout = 5 * time.Minute

// sanitySkip lists the csi-sanity specs the mock fails, all of the
// controller service, which a node agent never calls:
//   - "should not create volume with an invalid volume attribute class" and
//     "ModifyVolume ... should fail ...": the mock advertises MODIFY_VOLUME
//     but accepts any mutable parameters, where csi-sanity expects
//     InvalidArgument for unknown ones.
//   - "ControllerGetVolumeHealth": the call is newer than the mock (CSI spec
//     1.13, csi-sanity v5.6.0); the mock advertises GET_VOLUME_HEALTH (for
//     ListVolumes' volume condition) but leaves this call unimplemented.
var sanitySkip = strings.Join([]string{
	`should not create volume with an invalid volume attribute class`,
	`ModifyVolume \[Controller Server\] should fail`,
	`ControllerGetVolumeHealth`,
}, "|")

// TestCSISanity runs csi-sanity against csimock: the identity, controller
// and node calls, staging and publishing with real bind mounts, and then
// checks that no mount is left and that calls.jsonl recorded the node calls.
func TestCSISanity(t *testing.T) {
	requireRoot(t)
	sanity := plugin(t, "csi-sanity")
	d := startMock(t)
	ctx, cancel := context.WithTimeout(t.Context(), sanityTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, sanity,
		"--csi.endpoint="+d.endpoint,
		"--csi.stagingdir="+filepath.Join(d.dir, "sanity-staging"),
		"--csi.mountdir="+filepath.Join(d.dir, "sanity-mount"),
		"--ginkgo.skip="+sanitySkip,
		"--ginkgo.no-color")
	cmd.Dir = d.dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("csi-sanity: %v\n%s", err, out.String())
	}
	summary := out.String()
	if i := strings.LastIndex(summary, "Ran "); i >= 0 {
		summary = summary[i:]
	}
	t.Logf("csi-sanity: %s", strings.TrimSpace(summary))

	if m := mountsBelow(t, d.dir); len(m) > 0 {
		t.Errorf("mounts left after csi-sanity: %v", m)
	}
	ok := map[string]int{}
	for _, r := range d.calls(t) {
		if r.Code == codes.OK.String() {
			ok[r.Method]++
		}
	}
	for _, m := range []string{"NodeStageVolume", "NodePublishVolume", "NodeUnpublishVolume", "NodeUnstageVolume", "NodeGetInfo", "CreateVolume"} {
		if ok[m] == 0 {
			t.Errorf("calls.jsonl: no successful %s (successful calls: %v)", m, ok)
		}
	}
}

// TestCSIMock checks what csimock adds to the mock driver.
func TestCSIMock(t *testing.T) {
	requireRoot(t)
	d := startMock(t)
	conn := dial(t, d.endpoint)

	t.Run("Registration", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
		defer cancel()
		reg := registerapi.NewRegistrationClient(dial(t, d.regSock))
		info, err := reg.GetInfo(ctx, &registerapi.InfoRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if info.Type != registerapi.CSIPlugin || info.Name != driverName || info.Endpoint != d.endpoint ||
			len(info.SupportedVersions) != 1 || info.SupportedVersions[0] != "1.0.0" {
			t.Errorf("GetInfo = %+v; want type %s, name %s, endpoint %s, versions [1.0.0]", info, registerapi.CSIPlugin, driverName, d.endpoint)
		}
		if _, err := reg.NotifyRegistrationStatus(ctx, &registerapi.RegistrationStatus{PluginRegistered: true}); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(filepath.Join(d.control, "registration.jsonl"))
		if err != nil || !strings.Contains(string(data), `"plugin_registered":true`) {
			t.Errorf("registration.jsonl = %q, %v; want the NotifyRegistrationStatus", data, err)
		}
	})

	t.Run("NodeGetInfo", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
		defer cancel()
		f, err := invoke(ctx, conn, "/csi.v1.Node/NodeGetInfo", msg{})
		if err != nil {
			t.Fatal(err)
		}
		if len(f[1]) != 1 || string(f[1][0]) != nodeID {
			t.Errorf("NodeGetInfo node_id = %q, want %q", f[1], nodeID)
		}
		if len(f[3]) != 1 {
			t.Fatalf("NodeGetInfo: accessible_topology = %q, want one", f[3])
		}
		topo, err := fields(f[3][0])
		if err != nil {
			t.Fatal(err)
		}
		segs, err := stringMap(topo[1])
		if err != nil || len(segs) != 1 || segs[zoneKey] != zone {
			t.Errorf("NodeGetInfo topology = %v, %v; want %s=%s", segs, err, zoneKey, zone)
		}
	})

	t.Run("MountsKeepData", func(t *testing.T) { testMounts(t, d) })
	t.Run("InlineEphemeral", func(t *testing.T) { testInline(t, d) })
	t.Run("Fail", func(t *testing.T) { testFail(t, d) })
	t.Run("Hang", func(t *testing.T) { testHang(t, d) })

	t.Run("Shutdown", func(t *testing.T) {
		if err := d.stop(t.Context()); err != nil {
			t.Fatalf("csimock after SIGTERM: %v", err)
		}
		for _, sock := range []string{d.endpoint, d.regSock} {
			if exists(sock) {
				t.Errorf("socket %s left after SIGTERM", sock)
			}
		}
	})
}

// TestCSIMockRestart restarts csimock while a volume is staged and
// published: the mounts stay, and the new csimock, which has forgotten the
// volume, answers its stats and unpublishes and unstages it.
func TestCSIMockRestart(t *testing.T) {
	requireRoot(t)
	d := startMock(t)
	const id = "1"
	p := pathsFor(d.dir, "pv-restart")
	stage(t, d, id, p)
	target := publish(t, d, id, p, "pod-5", false)
	if err := d.stop(t.Context()); err != nil {
		t.Fatalf("csimock after SIGTERM: %v", err)
	}
	if !isMountPoint(t, target) || !isMountPoint(t, p.staging) {
		t.Fatalf("stopping csimock unmounted the volume (mounts: %v)", mountsBelow(t, d.dir))
	}

	d = startMockIn(t, d.dir)
	checkStats(t, d, id, target)
	nodeCall(t, d, "NodeUnpublishVolume", msg{}.str(1, id).str(2, target))
	if exists(target) {
		t.Errorf("NodeUnpublishVolume after a restart: %s still there", target)
	}
	nodeCall(t, d, "NodeUnstageVolume", msg{}.str(1, id).str(2, p.staging))
	if isMountPoint(t, p.staging) {
		t.Errorf("NodeUnstageVolume after a restart: %s still mounted", p.staging)
	}
}

// volumePaths are the staging and target paths of one volume, laid out as
// kubelet lays them out, below dir.
type volumePaths struct {
	staging string
	target  func(pod string) string
}

func pathsFor(dir, pv string) volumePaths {
	return volumePaths{
		staging: filepath.Join(dir, "kubelet/plugins/kubernetes.io/csi", driverName, pv, "globalmount"),
		target: func(pod string) string {
			return filepath.Join(dir, "kubelet/pods", pod, "volumes/kubernetes.io~csi", pv, "mount")
		},
	}
}

// nodeCall invokes a node call and fails t on an error.
func nodeCall(t *testing.T, d *mockDriver, method string, req msg) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
	defer cancel()
	if _, err := invoke(ctx, dial(t, d.endpoint), "/csi.v1.Node/"+method, req); err != nil {
		t.Fatalf("%s: %v", method, err)
	}
}

// stage stages volume id at p.staging, as the CO does (it makes the
// staging folder).
func stage(t *testing.T, d *mockDriver, id string, p volumePaths) {
	t.Helper()
	if err := os.MkdirAll(p.staging, 0o750); err != nil {
		t.Fatal(err)
	}
	nodeCall(t, d, "NodeStageVolume", msg{}.str(1, id).str(3, p.staging).sub(4, mountCapability()))
}

// publish publishes volume id for pod, as the CO does (it makes the target's
// parent folder).
func publish(t *testing.T, d *mockDriver, id string, p volumePaths, pod string, readOnly bool) string {
	t.Helper()
	target := p.target(pod)
	if err := os.MkdirAll(filepath.Dir(target), 0o750); err != nil {
		t.Fatal(err)
	}
	req := msg{}.str(1, id).str(3, p.staging).str(4, target).sub(5, mountCapability())
	if readOnly {
		req = req.varint(6, 1)
	}
	nodeCall(t, d, "NodePublishVolume", req)
	return target
}

// testMounts stages and publishes a volume for two pods in turn: the data
// the first writes is what the second reads, in the backing folder between.
func testMounts(t *testing.T, d *mockDriver) {
	const id = "2"
	p := pathsFor(d.dir, "pv-a")
	backing := filepath.Join(d.control, "volumes", id)

	stage(t, d, id, p)
	if !isMountPoint(t, p.staging) {
		t.Fatalf("NodeStageVolume: %s is no mount point", p.staging)
	}
	target := publish(t, d, id, p, "pod-1", false)
	if !isMountPoint(t, target) {
		t.Fatalf("NodePublishVolume: %s is no mount point", target)
	}
	if err := os.WriteFile(filepath.Join(target, "data"), []byte("written by pod-1"), 0o644); err != nil {
		t.Fatalf("write through the published volume: %v", err)
	}
	checkStats(t, d, id, target)
	roTarget := publish(t, d, id, p, "pod-ro", true)
	err := os.WriteFile(filepath.Join(roTarget, "other"), nil, 0o644)
	if !errors.Is(err, syscall.EROFS) {
		t.Errorf("write to a read-only publish: got %v, want EROFS", err)
	}
	for _, tgt := range []string{target, roTarget} {
		nodeCall(t, d, "NodeUnpublishVolume", msg{}.str(1, id).str(2, tgt))
		if exists(tgt) {
			t.Errorf("NodeUnpublishVolume: target %s still there", tgt)
		}
	}
	if !isMountPoint(t, p.staging) {
		t.Errorf("NodeUnpublishVolume unmounted the staging path %s too", p.staging)
	}
	nodeCall(t, d, "NodeUnstageVolume", msg{}.str(1, id).str(2, p.staging))
	if isMountPoint(t, p.staging) {
		t.Errorf("NodeUnstageVolume: %s still mounted", p.staging)
	}
	if data, err := os.ReadFile(filepath.Join(backing, "data")); err != nil || string(data) != "written by pod-1" {
		t.Errorf("backing folder after unstage: %q, %v; want pod-1's data", data, err)
	}

	stage(t, d, id, p)
	target = publish(t, d, id, p, "pod-2", false)
	if data, err := os.ReadFile(filepath.Join(target, "data")); err != nil || string(data) != "written by pod-1" {
		t.Errorf("pod-2 reads %q, %v; want pod-1's data", data, err)
	}
	nodeCall(t, d, "NodeUnpublishVolume", msg{}.str(1, id).str(2, target))
	nodeCall(t, d, "NodeUnstageVolume", msg{}.str(1, id).str(2, p.staging))

	records := d.calls(t)
	if r := lastCall(t, records, "NodePublishVolume"); r.VolumeID != id || r.TargetPath != target || r.StagingTargetPath != p.staging {
		t.Errorf("calls.jsonl NodePublishVolume = %+v; want volume %s, staging %s, target %s", r, id, p.staging, target)
	}
}

// checkStats checks that NodeGetVolumeStats answers the published path's
// file system usage: bytes and inodes, used no more than total.
func checkStats(t *testing.T, d *mockDriver, id, path string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
	defer cancel()
	f, err := invoke(ctx, dial(t, d.endpoint), "/csi.v1.Node/NodeGetVolumeStats", msg{}.str(1, id).str(2, path))
	if err != nil {
		t.Fatalf("NodeGetVolumeStats: %v", err)
	}
	units := map[uint64]bool{}
	for _, u := range f[1] {
		v, err := varints(u)
		if err != nil {
			t.Fatal(err)
		}
		// VolumeUsage: available 1, total 2, used 3, unit 4 (BYTES 1, INODES 2).
		if len(v[2]) != 1 || len(v[4]) != 1 || v[2][0] == 0 || (len(v[3]) == 1 && v[3][0] > v[2][0]) {
			t.Errorf("NodeGetVolumeStats usage %v: want a total, a unit and used <= total", v)
			continue
		}
		units[v[4][0]] = true
	}
	if !units[1] || !units[2] {
		t.Errorf("NodeGetVolumeStats units %v: want bytes (1) and inodes (2)", units)
	}
}

// testInline publishes an inline ephemeral volume, which has no staging.
func testInline(t *testing.T, d *mockDriver) {
	const id = "csi-inline-1"
	target := pathsFor(d.dir, "inline").target("pod-3")
	if err := os.MkdirAll(filepath.Dir(target), 0o750); err != nil {
		t.Fatal(err)
	}
	ephemeral := msg{}.str(1, "csi.storage.k8s.io/ephemeral").str(2, "true")
	nodeCall(t, d, "NodePublishVolume", msg{}.str(1, id).str(4, target).sub(5, mountCapability()).sub(8, ephemeral))
	if !isMountPoint(t, target) {
		t.Fatalf("NodePublishVolume (ephemeral): %s is no mount point", target)
	}
	if err := os.WriteFile(filepath.Join(target, "data"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if !exists(filepath.Join(d.control, "volumes", id, "data")) {
		t.Errorf("ephemeral volume: data not in its backing folder")
	}
	nodeCall(t, d, "NodeUnpublishVolume", msg{}.str(1, id).str(2, target))
	if exists(target) {
		t.Errorf("NodeUnpublishVolume: %s still there", target)
	}
}

// testFail injects a NodePublishVolume failure through the control folder.
func testFail(t *testing.T, d *mockDriver) {
	fail := filepath.Join(d.control, "NodePublishVolume.fail")
	if err := os.WriteFile(fail, []byte("injected failure\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := pathsFor(d.dir, "pv-fail")
	target := p.target("pod-4")
	ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
	defer cancel()
	req := msg{}.str(1, "3").str(4, target).sub(5, mountCapability())
	_, err := invoke(ctx, dial(t, d.endpoint), "/csi.v1.Node/NodePublishVolume", req)
	if st := status.Convert(err); st.Code() != codes.Internal || st.Message() != "injected failure" {
		t.Errorf("NodePublishVolume with %s: got %v, want Internal \"injected failure\"", fail, err)
	}
	if r := lastCall(t, d.calls(t), "NodePublishVolume"); r.Code != "Internal" || r.Error != "injected failure" || r.TargetPath != target {
		t.Errorf("calls.jsonl: %+v; want the injected failure for %s", r, target)
	}
	if exists(target) {
		t.Errorf("failed NodePublishVolume made %s", target)
	}
	if err := os.Remove(fail); err != nil {
		t.Fatal(err)
	}
	if _, err := invoke(ctx, dial(t, d.endpoint), "/csi.v1.Identity/Probe", msg{}); err != nil {
		t.Errorf("Probe after the failure file went: %v", err)
	}
}

// testHang makes Probe hang: a call ends at its deadline, and a call
// waiting goes on once the file is removed.
func testHang(t *testing.T, d *mockDriver) {
	hang := filepath.Join(d.control, "Probe.hang")
	if err := os.WriteFile(hang, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	conn := dial(t, d.endpoint)
	short, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if _, err := invoke(short, conn, "/csi.v1.Identity/Probe", msg{}); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("Probe with %s: got %v, want DeadlineExceeded", hang, err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := invoke(ctx, conn, "/csi.v1.Identity/Probe", msg{})
		done <- err
	}()
	// csimock logs "Hanging" once per call it holds: wait for the second.
	err := poll(ctx, callTimeout, func() (bool, error) {
		log, err := os.ReadFile(d.log)
		return strings.Count(string(log), `"Hanging"`) >= 2, err
	})
	if err != nil {
		t.Fatalf("second Probe never hung: %v", err)
	}
	select {
	case err := <-done:
		t.Fatalf("Probe returned %v while %s exists", err, hang)
	default:
	}
	if err := os.Remove(hang); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("Probe after %s went: %v", hang, err)
	}
}

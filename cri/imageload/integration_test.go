package imageload

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/images"
	"github.com/containerd/containerd/images/archive"
	"github.com/containerd/containerd/namespaces"
	"github.com/go-logr/logr/funcr"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/berthnode/berth/cri/imagearchive"
	"github.com/berthnode/berth/cri/pause"
)

// snapshotter is where the tests unpack: containerd's default on Linux, the
// one CRI uses on berth's nodes.
const snapshotter = "overlayfs"

// testImage returns a docker archive of a one-file image tagged ref.
func testImage(t *testing.T, ref string) []byte {
	t.Helper()
	var buf bytes.Buffer
	err := imagearchive.Write(&buf, imagearchive.Image{
		Ref:   ref,
		Cmd:   []string{"/hello"},
		Files: []imagearchive.File{{Path: "/hello", Mode: 0o644, Data: []byte("hello from " + ref + "\n")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// dialTest connects the test itself to the private containerd.
func dialTest(t *testing.T, socket string) (*containerd.Client, context.Context) {
	t.Helper()
	client, err := containerd.New(socket)
	if err != nil {
		t.Fatalf("connect to the test containerd: %v", err)
	}
	t.Cleanup(func() { client.Close() })
	return client, namespaces.WithNamespace(context.Background(), DefaultNamespace)
}

// checkUnpacked fails the test unless every name is an image unpacked into
// the snapshotter.
func checkUnpacked(t *testing.T, ctx context.Context, client *containerd.Client, names ...string) {
	t.Helper()
	for _, name := range names {
		img, err := client.GetImage(ctx, name)
		if err != nil {
			t.Errorf("image %s: %v", name, err)
			continue
		}
		unpacked, err := img.IsUnpacked(ctx, snapshotter)
		if err != nil || !unpacked {
			t.Errorf("image %s unpacked into %s = %v (error %v), want true", name, snapshotter, unpacked, err)
		}
	}
}

func listImages(t *testing.T, ctx context.Context, client *containerd.Client) []string {
	t.Helper()
	imgs, err := client.ListImages(ctx)
	if err != nil {
		t.Fatalf("list images: %v", err)
	}
	var names []string
	for _, img := range imgs {
		names = append(names, img.Name())
	}
	sort.Strings(names)
	return names
}

func TestLoadIntoContainerd(t *testing.T) {
	socket := startContainerd(t, false)
	cfg := Config{Address: "unix://" + socket}
	client, ctx := dialTest(t, socket)

	for _, tc := range []struct {
		name      string
		archive   []byte
		wantNames []string
	}{
		{
			name:      "qualified reference",
			archive:   testImage(t, "berth.local/imageload-test:v1"),
			wantNames: []string{"berth.local/imageload-test:v1"},
		},
		{
			name:      "short reference is normalized",
			archive:   testImage(t, "imageload-short:v2"),
			wantNames: []string{"docker.io/library/imageload-short:v2"},
		},
		{
			name:      "same archive again",
			archive:   testImage(t, "berth.local/imageload-test:v1"),
			wantNames: []string{"berth.local/imageload-test:v1"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			names, err := Load(ctx, cfg, bytes.NewReader(tc.archive))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if diff := cmp.Diff(tc.wantNames, names); diff != "" {
				t.Errorf("Load names (-want +got):\n%s", diff)
			}
			checkUnpacked(t, ctx, client, names...)
		})
	}
	want := []string{"berth.local/imageload-test:v1", "docker.io/library/imageload-short:v2"}
	if diff := cmp.Diff(want, listImages(t, ctx, client)); diff != "" {
		t.Errorf("images in %s (-want +got):\n%s", DefaultNamespace, diff)
	}

	t.Run("not an archive", func(t *testing.T) {
		_, err := Load(ctx, cfg, strings.NewReader("this is not a tarball"))
		if err == nil || !strings.Contains(err.Error(), socket) {
			t.Errorf("Load(garbage) error = %v, want an error naming %s", err, socket)
		}
	})
}

// TestLoadOCIArchive round-trips an image through an OCI archive exported
// by containerd itself, named and unnamed.
func TestLoadOCIArchive(t *testing.T) {
	socket := startContainerd(t, false)
	cfg := Config{Address: socket}
	client, ctx := dialTest(t, socket)
	const name = "berth.local/imageload-oci:v1"
	if _, err := Load(ctx, cfg, bytes.NewReader(testImage(t, name))); err != nil {
		t.Fatalf("Load docker archive: %v", err)
	}
	img, err := client.GetImage(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	export := func(opts ...archive.ExportOpt) []byte {
		var buf bytes.Buffer
		if err := client.Export(ctx, &buf, append(opts, archive.WithSkipDockerManifest())...); err != nil {
			t.Fatalf("export %s: %v", name, err)
		}
		return buf.Bytes()
	}
	named := export(archive.WithImage(client.ImageService(), name))
	// The target keeps the name annotations of the import; drop them.
	target := img.Target()
	target.Annotations = nil
	unnamed := export(archive.WithManifest(target))
	if err := client.ImageService().Delete(ctx, name, images.SynchronousDelete()); err != nil {
		t.Fatal(err)
	}

	names, err := Load(ctx, cfg, bytes.NewReader(named))
	if err != nil {
		t.Fatalf("Load OCI archive: %v", err)
	}
	if diff := cmp.Diff([]string{name}, names); diff != "" {
		t.Errorf("Load OCI archive names (-want +got):\n%s", diff)
	}
	checkUnpacked(t, ctx, client, names...)

	if _, err := Load(ctx, cfg, bytes.NewReader(unnamed)); !errors.Is(err, ErrUnnamed) {
		t.Errorf("Load unnamed OCI archive: error = %v, want ErrUnnamed", err)
	}
}

// logRecorder keeps the messages of a logger.
type logRecorder struct {
	mu       sync.Mutex
	messages []string
}

func (r *logRecorder) context(t *testing.T) context.Context {
	logger := funcr.New(func(prefix, args string) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.messages = append(r.messages, args)
		t.Log(prefix, args)
	}, funcr.Options{Verbosity: 4})
	return klog.NewContext(context.Background(), logger)
}

// take returns the messages recorded since the last call.
func (r *logRecorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := r.messages
	r.messages = nil
	return got
}

func containsMessage(messages []string, msg string) bool {
	for _, m := range messages {
		if strings.Contains(m, `"msg"="`+msg+`"`) {
			return true
		}
	}
	return false
}

// TestEnsureImage checks the import-once logic with an archive source that
// counts its calls, so it runs whether or not the pause program is embedded.
func TestEnsureImage(t *testing.T) {
	socket := startContainerd(t, false)
	cfg := Config{Address: socket}
	client, ctx := dialTest(t, socket)
	var logs logRecorder
	var built []string
	source := func(ref string) ([]byte, error) {
		built = append(built, ref)
		return testImage(t, ref), nil
	}

	// A short reference is imported and looked up by its normalized name.
	const ref, name = "imageload-sandbox:3.10", "docker.io/library/imageload-sandbox:3.10"
	if err := ensureImage(logs.context(t), cfg, ref, source); err != nil {
		t.Fatalf("first ensureImage: %v", err)
	}
	if !containsMessage(logs.take(), "Imported berth's pause image as the sandbox image") {
		t.Error("first ensureImage did not log the import")
	}
	checkUnpacked(t, ctx, client, name)
	first, err := client.ImageService().Get(ctx, name)
	if err != nil {
		t.Fatal(err)
	}

	if err := ensureImage(logs.context(t), cfg, ref, source); err != nil {
		t.Fatalf("second ensureImage: %v", err)
	}
	if !containsMessage(logs.take(), "Sandbox image present in containerd, not importing berth's") {
		t.Error("second ensureImage did not log that the image is present")
	}
	second, err := client.ImageService().Get(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{name}, built); diff != "" {
		t.Errorf("archives built (-want +got):\n%s", diff)
	}
	if !second.UpdatedAt.Equal(first.UpdatedAt) {
		t.Errorf("second ensureImage updated the image (%v, was %v)", second.UpdatedAt, first.UpdatedAt)
	}
}

// TestEnsureSandboxImage runs the real thing: with bin/pause generated, the
// embedded image is imported once; without, the missing image is reported
// as ErrNotEmbedded.
func TestEnsureSandboxImage(t *testing.T) {
	socket := startContainerd(t, false)
	cfg := Config{Address: socket}
	client, ctx := dialTest(t, socket)
	const ref = "registry.k8s.io/pause:3.10"

	_, err := os.Stat(filepath.Join("..", "pause", "bin", "pause"))
	if errors.Is(err, fs.ErrNotExist) {
		t.Logf("cri/pause/bin/pause not generated: checking that the missing image is reported")
		if err := EnsureSandboxImage(ctx, cfg, ref); !errors.Is(err, pause.ErrNotEmbedded) {
			t.Errorf("EnsureSandboxImage: error = %v, want pause.ErrNotEmbedded", err)
		}
		return
	}
	for i := range 2 {
		if err := EnsureSandboxImage(ctx, cfg, ref); err != nil {
			t.Fatalf("EnsureSandboxImage, call %d: %v", i+1, err)
		}
	}
	checkUnpacked(t, ctx, client, ref)
	img, err := client.GetImage(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := img.Spec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := []any{spec.Config.Entrypoint, spec.Config.User}
	if diff := cmp.Diff([]any{[]string{"/pause"}, pause.User}, got); diff != "" {
		t.Errorf("sandbox image entrypoint and user (-want +got):\n%s", diff)
	}
}

// TestImportedImagesReachCRI checks what berth relies on instead of labelling
// images itself: containerd's CRI plugin adopts what Load and
// EnsureSandboxImage import, and lists it under the imported name.
func TestImportedImagesReachCRI(t *testing.T) {
	socket := startContainerd(t, true)
	cfg := Config{Address: socket}
	ctx := context.Background()
	const loaded, sandbox = "berth.local/imageload-cri:v1", "berth.local/pause:3.10"
	if _, err := Load(ctx, cfg, bytes.NewReader(testImage(t, loaded))); err != nil {
		t.Fatalf("Load: %v", err)
	}
	source := func(ref string) ([]byte, error) { return testImage(t, ref), nil }
	if err := ensureImage(ctx, cfg, sandbox, source); err != nil {
		t.Fatalf("ensureImage: %v", err)
	}

	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	imageService := runtimeapi.NewImageServiceClient(conn)
	// CRI adopts images on containerd's image events, asynchronously.
	deadline := time.NewTimer(criAdoptTimeout)
	defer deadline.Stop()
	poll := time.NewTicker(socketPollInterval)
	defer poll.Stop()
	want := []string{loaded, sandbox}
	for {
		got := criTags(t, imageService)
		if cmp.Equal(want, got) {
			return
		}
		select {
		case <-deadline.C:
			t.Fatalf("CRI lists images %q after %v, want %q", got, criAdoptTimeout, want)
		case <-poll.C:
		}
	}
}

// criAdoptTimeout bounds the wait for CRI to list an imported image.
const criAdoptTimeout = 10 * time.Second

// criTags returns the sorted repo tags of the images CRI lists.
func criTags(t *testing.T, imageService runtimeapi.ImageServiceClient) []string {
	t.Helper()
	resp, err := imageService.ListImages(context.Background(), &runtimeapi.ListImagesRequest{})
	if err != nil {
		t.Fatalf("CRI ListImages: %v", err)
	}
	var tags []string
	for _, img := range resp.Images {
		tags = append(tags, img.RepoTags...)
	}
	sort.Strings(tags)
	return tags
}

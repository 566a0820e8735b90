package imageload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/namespaces"
	"github.com/distribution/reference"
	"k8s.io/klog/v2"

	"github.com/berthnode/berth/cri/pause"
)

// ErrUnnamed is returned by Load for an archive that names none of its
// images: a docker archive without RepoTags, or an OCI archive whose images
// carry neither an io.containerd.image.name annotation nor an
// org.opencontainers.image.ref.name holding a full reference.
var ErrUnnamed = errors.New("the archive names no image (want docker RepoTags, or an OCI io.containerd.image.name or full org.opencontainers.image.ref.name annotation)")

// Load imports a docker-archive or OCI image tarball (what `ctr images
// import` accepts) into cfg's containerd and unpacks each image for this
// platform into cfg's snapshotter, so that CRI can run it at once. It returns
// the names of the imported images, normalized as CRI looks them up (for
// example "docker.io/library/busybox:1.36"). An image already present under
// the same name is replaced.
func Load(ctx context.Context, cfg Config, r io.Reader) ([]string, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("load image archive: %w", err)
	}
	c, err := connect(cfg)
	if err != nil {
		return nil, fmt.Errorf("load image archive: %w", err)
	}
	defer c.close(ctx)
	return c.load(ctx, r)
}

// LoadFile is Load of the archive at path.
func LoadFile(ctx context.Context, cfg Config, path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load image archive: %w", err)
	}
	defer f.Close()
	names, err := Load(ctx, cfg, f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return names, nil
}

// EnsureSandboxImage imports berth's embedded pause image (see cri/pause) as
// ref when cfg's containerd has no image of that name, and does nothing
// otherwise. ref is the sandbox image the runtime is configured with; it
// must carry a tag, since the image berth builds has no registry digest. The
// error wraps pause.ErrNotEmbedded when the image is missing and this binary
// was built without the pause program.
func EnsureSandboxImage(ctx context.Context, cfg Config, ref string) error {
	return ensureImage(ctx, cfg, ref, pause.Image)
}

// ensureImage is EnsureSandboxImage with the archive source injected.
func ensureImage(ctx context.Context, cfg Config, ref string, archive func(ref string) ([]byte, error)) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("ensure sandbox image %s: %w", ref, err)
	}
	// containerd stores images under their normalized names, and CRI looks
	// them up that way: "pause:3.10" is docker.io/library/pause:3.10.
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return fmt.Errorf("sandbox image %q: %w", ref, err)
	}
	name := named.String()
	c, err := connect(cfg)
	if err != nil {
		return fmt.Errorf("ensure sandbox image %s: %w", name, err)
	}
	defer c.close(ctx)

	log := klog.FromContext(ctx).WithValues("image", name, "namespace", cfg.namespace())
	present, err := c.hasImage(ctx, name)
	if err != nil {
		return fmt.Errorf("ensure sandbox image %s: %w", name, err)
	}
	if present {
		log.V(2).Info("Sandbox image present in containerd, not importing berth's")
		return nil
	}
	data, err := archive(name)
	if err != nil {
		return fmt.Errorf("sandbox image %s is not in containerd at %s and berth cannot provide it: %w", name, c.socket, err)
	}
	if _, err := c.load(ctx, bytes.NewReader(data)); err != nil {
		return fmt.Errorf("import berth's pause image as sandbox image %s: %w", name, err)
	}
	log.Info("Imported berth's pause image as the sandbox image")
	return nil
}

// conn is a connection to one containerd, in one namespace.
type conn struct {
	client *containerd.Client
	socket string
	cfg    Config
}

// connect dials cfg's containerd; cfg must be valid.
func connect(cfg Config) (*conn, error) {
	socket := socketPath(cfg.Address)
	// containerd's client keeps waiting for a socket that does not exist
	// until its dial timeout; say at once what is wrong.
	info, err := os.Stat(socket)
	if err != nil {
		return nil, fmt.Errorf("containerd socket: %w (is containerd running?)", err)
	}
	if info.Mode().Type() != fs.ModeSocket {
		return nil, fmt.Errorf("containerd socket %s: not a socket", socket)
	}
	client, err := containerd.New(socket, containerd.WithDefaultNamespace(cfg.namespace()))
	if err != nil {
		return nil, fmt.Errorf("connect to containerd at %s: %w", socket, err)
	}
	return &conn{client: client, socket: socket, cfg: cfg}, nil
}

func (c *conn) close(ctx context.Context) {
	if err := c.client.Close(); err != nil {
		klog.FromContext(ctx).V(4).Info("Closing the containerd connection failed", "socket", c.socket, "err", err)
	}
}

// errorf wraps an error with the containerd instance it came from.
func (c *conn) errorf(format string, args ...any) error {
	return fmt.Errorf("containerd at %s, namespace %s: "+format, append([]any{c.socket, c.cfg.namespace()}, args...)...)
}

// hasImage reports whether an image is stored under name, a normalized
// reference.
func (c *conn) hasImage(ctx context.Context, name string) (bool, error) {
	ctx = namespaces.WithNamespace(ctx, c.cfg.namespace())
	_, err := c.client.GetImage(ctx, name)
	switch {
	case err == nil:
		return true, nil
	case errdefs.IsNotFound(err):
		return false, nil
	default:
		return false, c.errorf("get image %s: %w", name, err)
	}
}

// load imports the archive r and unpacks what it imported.
func (c *conn) load(ctx context.Context, r io.Reader) ([]string, error) {
	log := klog.FromContext(ctx)
	ctx = namespaces.WithNamespace(ctx, c.cfg.namespace())
	// One lease over import and unpack, so that the garbage collector takes
	// nothing in between; the images and their snapshots hold it all after.
	ctx, done, err := c.client.WithLease(ctx)
	if err != nil {
		return nil, c.errorf("create lease: %w", err)
	}
	defer func() {
		// Released even if ctx is cancelled, or the lease lingers a day.
		if err := done(context.WithoutCancel(ctx)); err != nil {
			log.Error(err, "Releasing the import lease failed; containerd expires it later", "socket", c.socket)
		}
	}()

	imgs, err := c.client.Import(ctx, r, containerd.WithImageRefTranslator(ociName))
	if err != nil {
		return nil, c.errorf("import image archive: %w", err)
	}
	if len(imgs) == 0 {
		return nil, c.errorf("import image archive: %w", ErrUnnamed)
	}
	names := make([]string, 0, len(imgs))
	for _, img := range imgs {
		if err := containerd.NewImage(c.client, img).Unpack(ctx, c.cfg.Snapshotter); err != nil {
			return nil, c.errorf("unpack image %s: %w", img.Name, err)
		}
		log.Info("Imported image", "image", img.Name, "digest", img.Target.Digest, "namespace", c.cfg.namespace())
		names = append(names, img.Name)
	}
	return names, nil
}

// ociName names an image of an OCI archive by its
// org.opencontainers.image.ref.name annotation when that holds a full
// reference ("registry.example/app:v1"), normalized as CRI looks images up.
// A bare tag ("v1") does not say which repository the image belongs to, so
// such an image gets no name: ctr would invent "import-<date>:v1", which no
// pod spec can mean.
func ociName(refName string) string {
	if !strings.ContainsAny(refName, "/:@") {
		return ""
	}
	named, err := reference.ParseDockerRef(refName)
	if err != nil {
		return ""
	}
	return named.String()
}

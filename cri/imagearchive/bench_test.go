package imagearchive_test

import (
	"fmt"
	"io"
	"io/fs"
	"testing"

	"github.com/berthnode/berth/cri/imagearchive"
)

// BenchmarkWrite measures packing an image the size of the test bed's echo
// image (a ~6 MiB binary) plus a few hundred symlinks, as busybox has.
func BenchmarkWrite(b *testing.B) {
	img := imagearchive.Image{
		Ref:        "berth.local/bench:v1",
		Entrypoint: []string{"/bin/app"},
		Files:      []imagearchive.File{{Path: "/bin/app", Mode: 0o755, Data: make([]byte, 6<<20)}},
	}
	for i := range 300 {
		img.Files = append(img.Files, imagearchive.File{Path: fmt.Sprintf("/bin/applet%d", i), Mode: fs.ModeSymlink | 0o777, Linkname: "app"})
	}
	b.SetBytes(6 << 20)
	b.ReportAllocs()
	for b.Loop() {
		if err := imagearchive.Write(io.Discard, img); err != nil {
			b.Fatal(err)
		}
	}
}

package logs

import (
	"bytes"
	"fmt"
	"io"
)

// tailBlock is how much of the file is read at a time, going backwards.
const tailBlock = 32 << 10

// tailOffset returns where the last n lines of a file of size bytes begin:
// 0 when the file has n lines or fewer, size when n is 0. A last line
// without a newline counts as a line. Lines are records of the file, as the
// kubelet counts them, so a split line counts once for each of its parts.
func tailOffset(r io.ReaderAt, size, n int64) (int64, error) {
	if n < 0 {
		return 0, nil
	}
	if n == 0 || size == 0 {
		return size, nil
	}
	end := size
	last := make([]byte, 1)
	if _, err := r.ReadAt(last, size-1); err != nil {
		return 0, fmt.Errorf("read log end: %w", err)
	}
	if last[0] == '\n' {
		// That newline ends the last line; it does not begin one.
		end--
	}
	buf := make([]byte, tailBlock)
	var found int64
	for end > 0 {
		start := max(end-tailBlock, 0)
		chunk := buf[:end-start]
		if _, err := r.ReadAt(chunk, start); err != nil && err != io.EOF {
			return 0, fmt.Errorf("read log: %w", err)
		}
		for i := len(chunk) - 1; i >= 0; i-- {
			i = bytes.LastIndexByte(chunk[:i+1], '\n')
			if i < 0 {
				break
			}
			found++
			if found == n {
				return start + int64(i) + 1, nil
			}
		}
		end = start
	}
	return 0, nil
}

package logs

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ErrBadQuery is wrapped by ParseQuery's errors: the query could not be
// decoded (the kubelet answers 400).
var ErrBadQuery = errors.New("unable to decode query")

// ErrInvalidOptions is wrapped by ValidateOptions' errors: the options
// decoded but do not make sense together (the kubelet answers 422).
var ErrInvalidOptions = errors.New("invalid request")

// ParseQuery decodes the kubelet's /containerLogs query parameters into
// PodLogOptions, as the kubelet's parameter codec does: a boolean is true
// unless absent, "0" or "false"; "tail" is the legacy name of tailLines, and
// "tail=all" means every line; sinceTime is RFC 3339. Unknown parameters are
// ignored.
func ParseQuery(q url.Values) (*v1.PodLogOptions, error) {
	opts := &v1.PodLogOptions{
		Container:                    q.Get("container"),
		Follow:                       queryBool(q, "follow"),
		Previous:                     queryBool(q, "previous"),
		Timestamps:                   queryBool(q, "timestamps"),
		InsecureSkipTLSVerifyBackend: queryBool(q, "insecureSkipTLSVerifyBackend"),
	}
	tailKey := "tailLines"
	if tail, ok := q["tail"]; ok && len(tail) > 0 && tail[0] != "" {
		tailKey = "tail"
		if tail[0] == "all" {
			tailKey = ""
		}
	}
	var err error
	if tailKey != "" {
		if opts.TailLines, err = queryInt(q, tailKey); err != nil {
			return nil, err
		}
	}
	if opts.LimitBytes, err = queryInt(q, "limitBytes"); err != nil {
		return nil, err
	}
	if opts.SinceSeconds, err = queryInt(q, "sinceSeconds"); err != nil {
		return nil, err
	}
	if s, ok := q["sinceTime"]; ok && len(s) > 0 && s[0] != "" {
		t, err := time.Parse(time.RFC3339, s[0])
		if err != nil {
			return nil, fmt.Errorf("%w: sinceTime %q is not RFC 3339", ErrBadQuery, s[0])
		}
		opts.SinceTime = &metav1.Time{Time: t}
	}
	if s, ok := q["stream"]; ok && len(s) > 0 && s[0] != "" {
		stream := s[0]
		opts.Stream = &stream
	}
	return opts, nil
}

func queryBool(q url.Values, key string) bool {
	v, ok := q[key]
	if !ok || len(v) == 0 {
		return false
	}
	return v[0] != "0" && !strings.EqualFold(v[0], "false")
}

func queryInt(q url.Values, key string) (*int64, error) {
	v, ok := q[key]
	if !ok || len(v) == 0 || v[0] == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(v[0], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%w: %s %q is not an integer", ErrBadQuery, key, v[0])
	}
	return &n, nil
}

// ValidateOptions checks opts as the API server and the kubelet do:
// tailLines not negative, limitBytes and sinceSeconds positive, at most one
// of sinceSeconds and sinceTime, stream one of All, Stdout and Stderr, and a
// single stream not combined with tailLines.
func ValidateOptions(opts *v1.PodLogOptions) error {
	var errs []error
	if opts.TailLines != nil && *opts.TailLines < 0 {
		errs = append(errs, fmt.Errorf("tailLines %d: must not be negative", *opts.TailLines))
	}
	if opts.LimitBytes != nil && *opts.LimitBytes < 1 {
		errs = append(errs, fmt.Errorf("limitBytes %d: must be greater than 0", *opts.LimitBytes))
	}
	if opts.SinceSeconds != nil && opts.SinceTime != nil {
		errs = append(errs, errors.New("at most one of sinceTime or sinceSeconds may be specified"))
	} else if opts.SinceSeconds != nil && *opts.SinceSeconds < 1 {
		errs = append(errs, fmt.Errorf("sinceSeconds %d: must be greater than 0", *opts.SinceSeconds))
	}
	if opts.Stream != nil {
		switch *opts.Stream {
		case v1.LogStreamAll:
		case v1.LogStreamStdout, v1.LogStreamStderr:
			if opts.TailLines != nil {
				errs = append(errs, errors.New("tailLines and a single stream are mutually exclusive"))
			}
		default:
			errs = append(errs, fmt.Errorf("stream %q: must be All, Stdout or Stderr", *opts.Stream))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidOptions, errors.Join(errs...))
	}
	return nil
}

// readOptions are the options of one read, resolved against the time of the
// request.
type readOptions struct {
	follow     bool
	timestamps bool
	// tail is how many records to start from the end of the file; negative
	// means all of them.
	tail int64
	// limit is how many bytes to write at most; negative means no limit.
	limit int64
	// since drops lines stamped before it.
	since time.Time
	// stdout and stderr say which streams to write.
	stdout, stderr bool
}

// resolve turns validated options into readOptions at time now: sinceSeconds
// counts back from now.
func resolve(opts *v1.PodLogOptions, now time.Time) readOptions {
	r := readOptions{
		follow:     opts.Follow,
		timestamps: opts.Timestamps,
		tail:       -1,
		limit:      -1,
		stdout:     true,
		stderr:     true,
	}
	if opts.TailLines != nil {
		r.tail = *opts.TailLines
	}
	if opts.LimitBytes != nil {
		r.limit = *opts.LimitBytes
	}
	if opts.SinceSeconds != nil {
		r.since = now.Add(-time.Duration(*opts.SinceSeconds) * time.Second)
	}
	if opts.SinceTime != nil {
		r.since = opts.SinceTime.Time
	}
	if opts.Stream != nil {
		r.stdout = *opts.Stream != v1.LogStreamStderr
		r.stderr = *opts.Stream != v1.LogStreamStdout
	}
	return r
}

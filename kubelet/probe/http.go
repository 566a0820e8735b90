package probe

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
)

// Limits of HTTP probes, as under the kubelet.
const (
	// maxBody is how much of a response body is read and reported.
	maxBody = 10 << 10
	// maxRedirects is how many redirects to the same host are followed.
	maxRedirects = 10
)

// NewHTTPRequest builds the GET request of an httpGet action: the host is
// the action's or else podIP, the port a number or one of the container's
// named ports. Headers of the action replace the defaults (User-Agent
// kube-probe, Accept */*); a Host header sets the request's host.
func NewHTTPRequest(ctx context.Context, a *v1.HTTPGetAction, podIP string, c *v1.Container) (*http.Request, error) {
	port, err := ResolvePort(a.Port, c)
	if err != nil {
		return nil, err
	}
	scheme := strings.ToLower(string(a.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	host := a.Host
	if host == "" {
		host = podIP
	}
	u, err := url.Parse(a.Path)
	if err != nil {
		return nil, fmt.Errorf("parse probe path %q: %w", a.Path, err)
	}
	u.Scheme = scheme
	u.Host = net.JoinHostPort(host, strconv.Itoa(port))
	if u.Path == "" {
		u.Path = "/"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("make probe request: %w", err)
	}
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Accept", "*/*")
	for _, h := range a.HTTPHeaders {
		if strings.EqualFold(h.Name, "Host") {
			req.Host = h.Value
			continue
		}
		req.Header.Del(h.Name)
	}
	for _, h := range a.HTTPHeaders {
		if !strings.EqualFold(h.Name, "Host") {
			req.Header.Add(h.Name, h.Value)
		}
	}
	return req, nil
}

// HTTP sends req within timeout on a connection of its own (no keep-alive,
// no proxy, certificates not verified, as the kubelet's probes). A status
// from 200 to 399 is a success; a redirect to the same host is followed,
// one to another host is not and gives a Warning. The output is the start
// of the response body, or why the probe failed.
func HTTP(req *http.Request, timeout time.Duration) (Result, string, error) {
	transport := &http.Transport{
		DisableKeepAlives: true,
		Proxy:             nil,
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // probes do not verify, as the kubelet's.
		DialContext:       (&net.Dialer{Timeout: timeout}).DialContext,
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{Timeout: timeout, Transport: transport, CheckRedirect: sameHostRedirects}
	resp, err := client.Do(req)
	if err != nil {
		return Failure, err.Error(), nil
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil && !errors.Is(err, io.EOF) {
		return Failure, err.Error(), nil
	}
	switch code := resp.StatusCode; {
	case code >= http.StatusOK && code < http.StatusMultipleChoices:
		return Success, string(body), nil
	case code >= http.StatusMultipleChoices && code < http.StatusBadRequest:
		return Warning, fmt.Sprintf("Probe terminated redirects, Response body: %s", body), nil
	default:
		return Failure, fmt.Sprintf("HTTP probe failed with statuscode: %d", code), nil
	}
}

// sameHostRedirects follows redirects that stay on the probed host.
func sameHostRedirects(req *http.Request, via []*http.Request) error {
	if req.URL.Hostname() != via[0].URL.Hostname() {
		return http.ErrUseLastResponse
	}
	if len(via) >= maxRedirects {
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	}
	return nil
}

// Package healthcheck serves the service proxy's health as kube-proxy does:
// /healthz and /livez on the healthz address (200 while queued updates get
// applied within the timeout, with a JSON body load balancers and operators
// read), and one HTTP server per health-check node port of the
// externalTrafficPolicy: Local services, answering 200 only while the node
// has local endpoints for the service.
package healthcheck

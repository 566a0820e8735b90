package podruntime

// Waiting reasons of containers that cannot start or wait to restart, as
// the kubelet reports them in container statuses.
const (
	ReasonCrashLoopBackOff  = "CrashLoopBackOff"
	ReasonErrImagePull      = "ErrImagePull"
	ReasonImagePullBackOff  = "ImagePullBackOff"
	ReasonErrImageNeverPull = "ErrImageNeverPull"
	ReasonInvalidImageName  = "InvalidImageName"
	ReasonCreateConfigError = "CreateContainerConfigError"
	ReasonCreateError       = "CreateContainerError"
	ReasonRunError          = "RunContainerError"
)

// WaitingReason is why a container that does not run waits, as found by the
// last attempt to start it.
type WaitingReason struct {
	Reason  string
	Message string
	// ForID is the container instance a CrashLoopBackOff is about.
	ForID string
}

// Package logs serves container logs the way the kubelet does, and rotates
// the log files the runtime writes.
//
// The Handler answers /containerLogs/{podNamespace}/{podID}/{containerName}
// (what `kubectl logs` reaches through the API server) with the kubelet's
// query options: follow, previous, timestamps, tailLines (and the legacy
// tail), sinceSeconds, sinceTime, limitBytes and stream. It finds the
// container through CRI by the labels berth puts on pods and containers, and
// reads the file CRI names in the container's status, written in the CRI log
// format:
//
//	2016-10-06T00:17:09.669794202Z stdout F a whole line
//	2016-10-06T00:17:09.669794203Z stderr P the start of a long line
//
// Partial records (tag P) are joined with the records that complete them,
// so a long line comes out as one line, stamped with the time it began.
// Stdout and stderr come out interleaved in the order they were written.
//
// The Rotator keeps every running container's log under containerLogMaxSize
// and at most containerLogMaxFiles files: it renames the current file to
// <path>.<UTC timestamp>, asks the runtime to reopen the log (the runtime
// writes to a new file only once that call returned), compresses older
// rotated files with gzip and removes the oldest ones.
//
// A reader that follows a log survives rotation without losing or repeating
// a line: when the path names a new file, it keeps reading the file it has
// open to its end, and moves to the next file only once that file has data,
// which proves the runtime is done with the old one. Only the current file
// is read for a request that does not follow, as the kubelet does.
//
// The reader is berth's own, not k8s.io/cri-client/pkg/logs.ReadLogs (the
// kubelet's), because ReadLogs does a different job where this package's
// tests (of the handler, Last, the tail and following) hold it to the one
// above:
//   - it writes the parts of a split line as they come, so a line of the
//     other stream lands inside the split one, and each part is filtered
//     by sinceTime and stamped on its own;
//   - it does not follow a log across rotation as this reader does (its
//     own documentation says it does not handle rotation): it learns of a
//     rotation only from file events it watches for after it first reached
//     the end of its file, so a rotation before then leaves it on the old
//     file until the container exits, and on a new file at the path it
//     moves there, past any file rotated in between (docs/kubelet.md has
//     the measurement);
//   - its tail does not count a last line without a newline, and it fails
//     on a missing file and on a first line it cannot parse;
//   - its parser and tail are not exported, so they cannot be used alone.
//
// Nor do the libraries rotate logs: the kubelet's container log manager is
// part of k8s.io/kubernetes, not a library.
package logs

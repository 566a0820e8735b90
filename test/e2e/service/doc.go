// Package service holds the end-to-end tests of berth's service proxy on
// the test bed: berth runs both parts on two joined nodes, and real pods
// reach Services through the rules it programs.
package service

package xtables

import (
	"bytes"
	"io"
)

// Table is an iptables table.
type Table string

// The tables berth writes to.
const (
	TableNAT    Table = "nat"
	TableFilter Table = "filter"
)

// TableData is the iptables-restore --noflush input of one table.
type TableData struct {
	// Table is the table the data is for.
	Table Table
	// Data is the input, from "*table" to "COMMIT"; nil when the input is
	// streamed (see Streamed): WriteTo renders it as it goes.
	Data []byte
	// stream writes the input when Data is nil.
	stream io.WriterTo
}

// StreamedTable returns the input of table that stream writes as it renders
// it, for an input too large to hold at once (28 MB for the iptables
// backend's nat table at 10,000 services).
func StreamedTable(table Table, stream io.WriterTo) TableData {
	return TableData{Table: table, stream: stream}
}

// WriteTo writes the table's input to w.
func (t TableData) WriteTo(w io.Writer) (int64, error) {
	if t.Streamed() {
		return t.stream.WriteTo(w)
	}
	n, err := w.Write(t.Data)
	return int64(n), err
}

// Bytes returns the table's input, rendering it when it is streamed.
func (t TableData) Bytes() ([]byte, error) {
	if !t.Streamed() {
		return t.Data, nil
	}
	var b bytes.Buffer
	_, err := t.WriteTo(&b)
	return b.Bytes(), err
}

// Streamed tells whether the input is rendered as it is written rather
// than held in Data.
func (t TableData) Streamed() bool { return t.Data == nil && t.stream != nil }

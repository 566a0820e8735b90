package csisanity

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
)

// The main module does not depend on the CSI spec's Go types, so the test
// speaks CSI in protobuf wire format: a message is built field by field and
// carried as the unknown fields of an Empty, which the gRPC codec passes
// through unchanged both ways.

// msg is a protobuf message under construction.
type msg []byte

// str appends string (or bytes) field num.
func (m msg) str(num protowire.Number, s string) msg {
	b := protowire.AppendTag(m, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// sub appends message field num.
func (m msg) sub(num protowire.Number, sub msg) msg {
	b := protowire.AppendTag(m, num, protowire.BytesType)
	return protowire.AppendBytes(b, sub)
}

// varint appends varint field num (ints, enums, bools).
func (m msg) varint(num protowire.Number, v uint64) msg {
	b := protowire.AppendTag(m, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// mountCapability is a VolumeCapability: mount (field 2, no options),
// access mode (field 3) SINGLE_NODE_WRITER (1).
func mountCapability() msg {
	return msg{}.sub(2, msg{}).sub(3, msg{}.varint(1, 1))
}

// invoke calls method (e.g. "/csi.v1.Node/NodeStageVolume") with req and
// returns the reply's fields.
func invoke(ctx context.Context, conn *grpc.ClientConn, method string, req msg) (map[protowire.Number][][]byte, error) {
	in := &emptypb.Empty{}
	if err := proto.Unmarshal(req, in); err != nil {
		return nil, fmt.Errorf("encode %s request: %w", method, err)
	}
	out := &emptypb.Empty{}
	if err := conn.Invoke(ctx, method, in, out); err != nil {
		return nil, err
	}
	return fields(out.ProtoReflect().GetUnknown())
}

// fields splits a message into its length-delimited fields (strings,
// messages, map entries), by field number; other fields are skipped.
func fields(b []byte) (map[protowire.Number][][]byte, error) {
	out := map[protowire.Number][][]byte{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
		if typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, protowire.ParseError(n)
			}
			out[num] = append(out[num], v)
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
	}
	return out, nil
}

// varints returns the varint fields of a message, by field number.
func varints(b []byte) (map[protowire.Number][]uint64, error) {
	out := map[protowire.Number][]uint64{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
		if typ == protowire.VarintType {
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return nil, protowire.ParseError(n)
			}
			out[num] = append(out[num], v)
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
	}
	return out, nil
}

// stringMap decodes the entries of a map<string, string> field.
func stringMap(entries [][]byte) (map[string]string, error) {
	m := map[string]string{}
	for _, e := range entries {
		f, err := fields(e)
		if err != nil {
			return nil, err
		}
		var k, v string
		if len(f[1]) > 0 {
			k = string(f[1][0])
		}
		if len(f[2]) > 0 {
			v = string(f[2][0])
		}
		m[k] = v
	}
	return m, nil
}

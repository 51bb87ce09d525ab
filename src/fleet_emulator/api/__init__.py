"""The gRPC boundary: per-version servicers, protobuf conversion, error mapping to google.rpc.Status."""

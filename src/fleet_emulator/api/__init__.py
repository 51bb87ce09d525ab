"""The gRPC boundary: per-version servicers, conversion to protobuf, and error mapping to google.rpc.Status."""

"""HTTP plumbing every blueprint shares: request ids, headers, strict bodies, the caller, the OpenAPI machinery."""

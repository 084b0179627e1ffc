"""Asynchronous inference: the S3 layout, S3 event parsing, the trigger that invokes the endpoint, and the client."""

"""The SageMaker serving container's HTTP server."""

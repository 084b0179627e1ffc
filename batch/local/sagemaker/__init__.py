"""The local stand-in for SageMaker: its control plane and runtime over SageMaker's wire protocols.

`api.py` holds the dispatch, the shared model table and the error shape; each other module emulates one
SageMaker feature (transform jobs, asynchronous endpoints, ...) and registers its operations there.
"""
